"""HC18 at half resolution, in its published layout, for a benchmark run on a machine the full set
cannot reach (a GPU machine that takes at most 64 MiB of files: HC18's training set is 130 MB).

Images are box-filtered to half size (each 2 × 2 block's mean). A 2 × 2 block of the annotation is
contour when any of its four pixels is, which keeps a closed (4-connected) contour closed, so the
adapter still fills it; the filled head is then at most one half-resolution pixel wider along its edge.
The pixel size in the CSV doubles, so millimetre measurements stay right. An odd side (a few HC18
scans are 738 × 541, say) loses its last row or column first, so that the scale stays exactly 2.

    python benchmarks/hc18_half_resolution.py ../shared/data/hc18 .gpu_data/hc18
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from m2dino.data.adapters import get_adapter  # noqa: E402

CSV_NAME = get_adapter("hc18").CSV_NAME  # the CSV of the published layout, as the adapter reads it


def halve_image(path: Path) -> Image.Image:
    """Each 2 × 2 block's mean, rounded (an exact box filter)."""
    image = np.asarray(Image.open(path))
    height, width = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[:2 * height, :2 * width].reshape(height, 2, width, 2, *image.shape[2:]).mean(axis=(1, 3))
    return Image.fromarray(np.round(blocks).astype(image.dtype))


def halve_contour(path: Path) -> Image.Image:
    """A block is contour when any of its four pixels is."""
    contour = np.asarray(Image.open(path).convert("L")) > 0
    height, width = contour.shape[0] // 2, contour.shape[1] // 2
    blocks = contour[:2 * height, :2 * width].reshape(height, 2, width, 2).any(axis=(1, 3))
    return Image.fromarray(blocks.astype(np.uint8) * 255)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="HC18 in its published layout")
    parser.add_argument("out", type=Path, help="where to write the half-resolution copy")
    args = parser.parse_args(argv)
    with (args.src / CSV_NAME).open(newline="") as f:
        rows = list(csv.DictReader(f))
    (args.out / "training_set").mkdir(parents=True, exist_ok=True)
    for row in tqdm(rows, desc="HC18 at half resolution"):
        name = row["filename"]
        halve_image(args.src / "training_set" / name).save(args.out / "training_set" / name, optimize=True)
        annotation = name.replace("HC.png", "HC_Annotation.png")
        halve_contour(args.src / "training_set" / annotation).save(args.out / "training_set" / annotation,
                                                                   optimize=True)
        row["pixel size(mm)"] = repr(2 * float(row["pixel size(mm)"]))
    with (args.out / CSV_NAME).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
