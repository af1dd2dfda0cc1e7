"""USGRA-seg (ultrasound-guided regional anaesthesia), published layout::

    <src>/images/0000.png        <src>/masks/0000.png        mask values 0, 1, 2
    <src>/test/images/...        <src>/test/masks/...

Gives ``nerve_vessel_seg`` samples in the published train/test split. Images and masks are paired
by file name; an image without a mask, a mask without an image or a size mismatch is an error.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..collection import LazySample, SampleCollection
from ..errors import DataError
from ..mask_io import image_size
from .common import image_files, masked_sample, require_dir

NAME = "usgra"
TASKS = ("nerve_vessel_seg",)
SPLITS = {"train": ("images", "masks"), "test": ("test/images", "test/masks")}
LAYOUT = "USGRA layout: images/ + masks/ and test/images/ + test/masks/, paired by file name"


def load(src: str | Path) -> dict[str, SampleCollection]:
    """``{"train", "test"}`` -> lazy ``nerve_vessel_seg`` samples, sorted by file name."""
    src = Path(src)
    out = {}
    for split, (image_dir, mask_dir) in SPLITS.items():
        images = {p.name: p for p in image_files(require_dir(src / image_dir, LAYOUT))}
        masks = {p.name: p for p in image_files(require_dir(src / mask_dir, LAYOUT))}
        for missing, here, there in ((sorted(images.keys() - masks.keys()), image_dir, mask_dir),
                                     (sorted(masks.keys() - images.keys()), mask_dir, image_dir)):
            if missing:
                raise DataError(f"{src / here}: {len(missing)} file(s) without a partner in {src / there} "
                                f"(e.g. {', '.join(missing[:3])}); expected image/mask pairs with the same name")
        if not images:
            raise DataError(f"{src / image_dir}: empty dataset (no images)")
        items = []
        for name, image_file in images.items():
            mask_file = masks[name]
            size, mask_size = image_size(image_file), image_size(mask_file)
            if size != mask_size:
                raise DataError(f"{mask_file}: mask is {mask_size[0]}×{mask_size[1]} but image {image_file} is "
                                f"{size[0]}×{size[1]} (H×W); expected the same size")
            meta = {"dataset": NAME, "split": split, "name": image_file.stem}
            items.append(LazySample("nerve_vessel_seg", str(image_file),
                                    partial(masked_sample, image_file, mask_file, "nerve_vessel_seg", meta), meta,
                                    files=(str(image_file), str(mask_file))))
        out[split] = SampleCollection(items)
    return out
