"""How long segmentation scoring takes: Hausdorff (and Dice, HD95, NSD) on 1,000 masks of 512×512.

Compares the exact cropped computation used by `m2dino.evaluation` with the naive one (a
distance transform of the full image per class and direction), checks they agree, and times a
whole `score_submission` run that reads the masks from PNG files. Synthetic binary masks: a
ground-truth ellipse of random size (radius 10-180 px), a prediction shifted and rescaled from
it, sometimes with a far false-positive blob or empty.

    python benchmarks/metrics_speed.py            # writes benchmarks/results/metrics_speed.{md,json}
    python benchmarks/metrics_speed.py --quick    # 50 masks of 256×256, written to a temporary folder
    python benchmarks/metrics_speed.py --rerender # rewrite results/metrics_speed.md from its .json
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy
from scipy import ndimage

from harness.report import add_output_arguments, command_line, output_paths, read_result, write_result
from harness.timing import timed_calls
from m2dino.evaluation import GroundTruth, SubmissionEntry, read_submission, score_submission, write_submission
from m2dino.evaluation.metrics import class_scores, dice_per_class, hausdorff_per_class
from m2dino.models import SegmentationPrediction

NUM_CLASSES = 2


def ellipse(size: int, cy: float, cx: float, ry: float, rx: float, angle: float) -> np.ndarray:
    yy, xx = np.ogrid[:size, :size]
    y, x = yy - cy, xx - cx
    cos, sin = np.cos(angle), np.sin(angle)
    return (((x * cos + y * sin) / rx) ** 2 + ((y * cos - x * sin) / ry) ** 2 <= 1).astype(np.uint8)


def mask_pair(index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (prediction, ground truth) pair number ``index``."""
    rng = np.random.default_rng([seed, index])
    ry, rx = rng.uniform(10, 180, 2)
    cy, cx = rng.uniform(max(ry, rx), size - max(ry, rx), 2) if max(ry, rx) < size / 2 else (size / 2, size / 2)
    angle = rng.uniform(0, np.pi)
    gt = ellipse(size, cy, cx, ry, rx, angle)
    if rng.random() < 0.05:
        return np.zeros_like(gt), gt
    dy, dx = rng.normal(0, 4, 2)
    scale = rng.uniform(0.9, 1.1, 2)
    pred = ellipse(size, cy + dy, cx + dx, ry * scale[0], rx * scale[1], angle + rng.normal(0, 0.05))
    if rng.random() < 0.3:
        pred |= ellipse(size, *rng.uniform(0, size, 2), 4, 4, 0.0)
    return pred, gt


def naive_hausdorff(pred: np.ndarray, gt: np.ndarray) -> float:
    """Full-image distance transforms, no crop: the reference the fast path must match."""
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        return float(np.hypot(*pred.shape))
    return float(max(ndimage.distance_transform_edt(~gt)[pred].max(), ndimage.distance_transform_edt(~pred)[gt].max()))


def run(num_masks: int, size: int, naive_subset: int, seed: int) -> dict:
    def pairs(n: int):  # regenerated for every pass: 2×1000 masks of 512×512 held at once would be 0.5 GB
        return (mask_pair(i, size, seed) for i in range(n))

    hd_s, fast = timed_calls(pairs(num_masks), lambda p, g: hausdorff_per_class(p, g, NUM_CLASSES))
    dice_s, _ = timed_calls(pairs(num_masks), lambda p, g: dice_per_class(p, g, NUM_CLASSES))
    all_s, _ = timed_calls(pairs(num_masks), lambda p, g: class_scores(p, g, NUM_CLASSES, 2.0))
    naive_s, naive = timed_calls(pairs(naive_subset),
                                 lambda p, g: [naive_hausdorff(p == c, g == c) for c in range(NUM_CLASSES)])
    max_difference = float(np.max(np.abs(np.array(fast[:naive_subset]) - np.array(naive))))

    with tempfile.TemporaryDirectory() as tmp:
        truth_dir = Path(tmp) / "truth"
        truth_dir.mkdir()
        rows, entries = [], []
        for i, (pred, gt) in enumerate(pairs(num_masks)):
            np.save(truth_dir / f"{i}.npy", gt)
            row = GroundTruth("fetal_head", "segmentation", NUM_CLASSES, f"../img/{i}.png",
                              mask_path=f"../Segmentation/Two/bench/{i}.png",
                              mask=lambda path=truth_dir / f"{i}.npy": np.load(path))
            rows.append(row)
            entries.append(SubmissionEntry(row.task_id, row.image_path, SegmentationPrediction(pred), row.mask_path))
        write_submission(entries, Path(tmp) / "pred")
        start = time.perf_counter()
        metrics = score_submission(rows, read_submission(Path(tmp) / "pred"))
        score_s = time.perf_counter() - start
    assert metrics["segmentation"]["fetal_head"]["num_samples"] == num_masks

    naive_full_s = naive_s * num_masks / naive_subset
    return {
        "command": command_line(), "num_masks": num_masks, "size": size, "num_classes": NUM_CLASSES, "seed": seed,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "scipy": scipy.__version__, "processor": platform.processor() or platform.machine()},
        "seconds": {"hausdorff_fast": hd_s, "dice": dice_s, "class_scores": all_s,
                    "hausdorff_naive_subset": naive_s, "hausdorff_naive_extrapolated": naive_full_s,
                    "score_submission_end_to_end": score_s},
        "naive_subset": naive_subset,
        "speedup_hausdorff": naive_full_s / hd_s,
        "max_abs_difference_fast_vs_naive": max_difference,
    }


def markdown(result: dict) -> str:
    n, s = result["num_masks"], result["seconds"]
    rows = [("Hausdorff, cropped exact EDT (m2dino)", s["hausdorff_fast"], n),
            (f"Hausdorff, naive full-image EDT (measured on {result['naive_subset']}, ×{n // result['naive_subset']})",
             s["hausdorff_naive_extrapolated"], n),
            ("Dice", s["dice"], n),
            ("all per-class scores: Dice + HD, and HD95 + NSD@2px (foreground) sharing HD's transforms",
             s["class_scores"], n),
            ("score_submission end to end (PNG read + all per-class scores)", s["score_submission_end_to_end"], n)]
    m = result["machine"]
    lines = [f"# Segmentation scoring speed: {n} masks of {result['size']}×{result['size']}, {result['num_classes']} "
             "classes (background included, as the challenge scores it)", "",
             f"Machine: {m['cpus']} CPU(s) ({m['processor']}), shared with other jobs; Python {m['python']}, "
             f"NumPy {m['numpy']}, SciPy {m['scipy']}. Command: "
             f"`{result.get('command', 'python benchmarks/metrics_speed.py')}`.", "",
             "| what | total (s) | per mask (ms) |", "|---|---|---|",
             *(f"| {name} | {total:.2f} | {1000 * total / count:.2f} |" for name, total, count in rows), "",
             f"Hausdorff speed-up over the naive full-image computation: **{result['speedup_hausdorff']:.1f}×**; "
             f"largest difference between the two on the {result['naive_subset']} compared masks: "
             f"{result['max_abs_difference_fast_vs_naive']:.3g} px.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-masks", type=int, default=None, help="default 1000 (--quick: 50)")
    parser.add_argument("--size", type=int, default=None, help="mask side in pixels, default 512 (--quick: 256)")
    parser.add_argument("--naive-subset", type=int, default=None,
                        help="masks timed with the naive method, default 100 (--quick: 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a few seconds' smoke run with fewer, smaller masks")
    add_output_arguments(parser, "metrics_speed")
    args = parser.parse_args(argv)
    md_path, json_path = output_paths(args)
    if args.rerender:
        result = read_result(json_path)
    else:
        def choose(value: int | None, quick: int, full: int) -> int:
            return value if value is not None else quick if args.quick else full
        num_masks, size = choose(args.num_masks, 50, 1000), choose(args.size, 256, 512)
        naive_subset = choose(args.naive_subset, 10, 100)
        if min(num_masks, size, naive_subset) < 1:
            parser.error(f"--num-masks, --size and --naive-subset must be positive; got {num_masks}, {size}, "
                         f"{naive_subset}")
        result = run(num_masks, size, min(naive_subset, num_masks), args.seed)
    report = markdown(result)
    print(report)
    write_result(md_path, json_path, report, result, indent=2)


if __name__ == "__main__":
    main()
