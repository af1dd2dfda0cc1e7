"""BUSI (Al-Dhabyani et al. 2020, breast ultrasound), public layout::

    <src>/Dataset_BUSI_with_GT/benign/benign (12).png
                                      benign (12)_mask.png
                                      benign (12)_mask_1.png    a second lesion (some images)
                              /malignant/...   /normal/...       (normal masks are empty)

(``src`` may also be the ``Dataset_BUSI_with_GT`` folder itself.) Every image gives a
``breast_3cls`` sample (normal / benign / malignant); benign and malignant images also give
``breast_lesion`` (the union of their masks) and ``breast_lesion_det`` (the box around that
union). ``normal_in_segmentation=True`` adds the normal images, with empty masks, to
``breast_lesion``. BUSI has no official split and no patient ids: images are split per class
(stratified) with `SPLIT_SEED` and `SPLIT_FRACTIONS`.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import numpy as np

from ..collection import LazySample, SampleCollection
from ..errors import DataError
from ..labels import box_of_mask
from ..mask_io import read_mask
from ..sample import Sample
from .common import load_image, require_dir, split_groups

NAME = "busi"
TASKS = ("breast_3cls", "breast_lesion", "breast_lesion_det")
CLASSES = ("normal", "benign", "malignant")  # breast_3cls class order
SPLIT_SEED = 0
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
LAYOUT = "BUSI layout: Dataset_BUSI_with_GT/{benign,malignant,normal}/<name>.png + <name>_mask[_k].png"
_MASK = re.compile(r"^(?P<stem>.+)_mask(_\d+)?$")


def load(src: str | Path, seed: int = SPLIT_SEED, fractions: dict[str, float] | None = None,
         normal_in_segmentation: bool = False) -> dict[str, SampleCollection]:
    """``{"train", "val", "test"}`` -> lazy samples (each image's tasks consecutively)."""
    src = Path(src)
    root = src / "Dataset_BUSI_with_GT" if (src / "Dataset_BUSI_with_GT").is_dir() else src
    fractions = fractions or SPLIT_FRACTIONS
    splits: dict[str, list[LazySample]] = {split: [] for split in fractions}
    for label, name in enumerate(CLASSES):
        folder = require_dir(root / name, LAYOUT)
        pairs = _pair_masks(folder)
        split_of = split_groups(list(pairs), fractions, seed)
        for image_file, mask_files in pairs.items():
            split = split_of[image_file]
            meta = {"dataset": NAME, "split": split, "class_name": name, "name": Path(image_file).stem}
            tasks = ["breast_3cls"]
            if name != "normal" or normal_in_segmentation:
                tasks.append("breast_lesion")
            if name != "normal":
                tasks.append("breast_lesion_det")
            for task in tasks:
                load_one = partial(_sample, Path(image_file), tuple(mask_files), task, label, meta)
                splits[split].append(LazySample(task, image_file, load_one, meta,
                                                files=(image_file, *map(str, mask_files)),
                                                label=label if task == "breast_3cls" else None))
    if not any(splits.values()):
        raise DataError(f"{root}: empty dataset (no images)")
    return {split: SampleCollection(items) for split, items in splits.items()}


def _pair_masks(folder: Path) -> dict[str, list[Path]]:
    """image file -> its mask files (``_mask`` first, then ``_mask_1``, ...), both ways checked."""
    images, masks = {}, {}
    for path in sorted(folder.glob("*.png")):
        match = _MASK.match(path.stem)
        if match:
            masks.setdefault(match.group("stem"), []).append(path)
        else:
            images[path.stem] = path
    orphans = sorted(masks.keys() - images.keys())
    if orphans:
        raise DataError(f"{folder}: mask(s) without an image: {', '.join(f'{o}_mask.png' for o in orphans[:3])}")
    missing = sorted(images.keys() - masks.keys())
    if missing:
        raise DataError(f"{folder}: image(s) without a mask: {', '.join(f'{m}.png' for m in missing[:3])}; "
                        "expected <name>_mask.png beside each image")
    # Sorting by name puts "x_mask" before "x_mask_1" before "x_mask_2".
    return {str(images[stem]): sorted(masks[stem], key=lambda p: (len(p.stem), p.stem)) for stem in images}


def _sample(image_file: Path, mask_files: tuple[Path, ...], task: str, label: int, meta: dict) -> Sample:
    if task == "breast_3cls":
        return Sample(load_image(image_file), task, label, source=str(image_file), meta=dict(meta))
    image = load_image(image_file)
    union = np.zeros(image.shape[:2], dtype=bool)
    for mask_file in mask_files:
        mask = read_mask(mask_file)
        if mask.shape != union.shape:
            raise DataError(f"{mask_file}: mask is {mask.shape[0]}×{mask.shape[1]} but image {image_file} is "
                            f"{union.shape[0]}×{union.shape[1]} (H×W); expected the same size")
        union |= mask > 0
    if meta["class_name"] != "normal" and not union.any():
        raise DataError(f"{mask_files[0]}: empty lesion mask for a {meta['class_name']} image; expected a lesion")
    target = union.astype(np.uint8) if task == "breast_lesion" else box_of_mask(union)
    return Sample(image, task, target, source=str(image_file),
                  meta={**meta, "mask_files": [str(m) for m in mask_files]})
