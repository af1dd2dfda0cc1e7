"""MMOTU OTU_2d (Zhao et al. 2022), 2-D ovarian tumour ultrasound, published layout::

    <src>/<Category>/images/<n>.JPG          Chocolate_Cyst, Serous_Cystadenoma, ... (8 folders)
    <src>/<Category>/annotations/<n>.PNG     RGB, black background, the tumour in its category's colour
    <src>/OTU_2D_8-layers.json               [{"file_path_img": "OTU_2D/8_layers/<Category>/images/<n>.JPG",
                                               "file_path_ann": ..., "split": "train" | "validation"}, ...]

Every image gives ``ovary_tumor`` (the coloured region as class 1, as MMOTU's own binary masks;
a normal ovary's region counts too unless ``normal_in_segmentation=False``) and
``ovary_tumor_cls`` (the category, in MMOTU's label order). A mask pixel of another category's
colour, or of no category's, is an error naming the file. An annotation of another size than its
image (one published: Teratoma 598, 256×256 for a 604×566 image) cannot be placed on it: that
image is left out with a warning naming it.

Split: the official one. Its "validation" part (no patient in common with "train", per the
authors) is our test split; `VAL_FRACTION` of the official train images, per category, with
`SPLIT_SEED`, is our val split (no patient ids: val may share patients with train).
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from ...image.io import ImageFormatError, open_image
from ..collection import LazySample, SampleCollection
from ..errors import DataError, MissingFileError
from ..mask_io import image_size
from ..sample import Sample
from .common import load_image, split_groups

NAME = "mmotu"
TASKS = ("ovary_tumor", "ovary_tumor_cls")
# folder -> annotation colour, in MMOTU's class-label order (ovary_tumor_cls's classes)
CATEGORIES = {"Chocolate_Cyst": (64, 0, 0), "Serous_Cystadenoma": (0, 64, 0), "Teratoma": (0, 0, 64),
              "Theca_Cell_Tumor": (64, 0, 64), "Simple_Cyst": (64, 64, 0), "Ovary_Normal": (64, 64, 64),
              "Mucinous_Cystadenoma": (0, 128, 0), "High-grade_Serous_Cystadenoma": (0, 0, 128)}
SPLIT_FILE = "OTU_2D_8-layers.json"
OFFICIAL_SPLITS = {"train": "train", "validation": "test"}
SPLIT_SEED = 0
VAL_FRACTION = 0.1
LAYOUT = f"MMOTU OTU_2d layout: <Category>/images/*.JPG, <Category>/annotations/*.PNG and {SPLIT_FILE}"


def load(src: str | Path, seed: int = SPLIT_SEED, val_fraction: float = VAL_FRACTION,
         normal_in_segmentation: bool = True) -> dict[str, SampleCollection]:
    """``{"train", "val", "test"}`` -> lazy samples (each image's tasks consecutively)."""
    src = Path(src)
    entries = _entries(src)
    splits: dict[str, list[LazySample]] = {"train": [], "val": [], "test": []}
    val_of: dict[str, str] = {}
    for category in CATEGORIES:  # val drawn per category, so every category is in val
        train = [image for image, cat, split in entries if cat == category and split == "train"]
        if train:
            val_of.update(split_groups(train, {"train": 1 - val_fraction, "val": val_fraction}, seed))
    for image_file, category, split in entries:
        split = val_of.get(image_file, split)
        label = list(CATEGORIES).index(category)
        mask_file = src / category / "annotations" / f"{Path(image_file).stem}.PNG"
        meta = {"dataset": NAME, "split": split, "class_name": category, "name": Path(image_file).stem}
        tasks = ["ovary_tumor", "ovary_tumor_cls"]
        if category == "Ovary_Normal" and not normal_in_segmentation:
            tasks.remove("ovary_tumor")
        for task in tasks:
            splits[split].append(LazySample(task, image_file, partial(_sample, Path(image_file), mask_file, task,
                                                                      category, meta), meta,
                                            files=(image_file, str(mask_file)),
                                            label=label if task == "ovary_tumor_cls" else None))
    return {split: SampleCollection(items) for split, items in splits.items()}


def _entries(src: Path) -> list[tuple[str, str, str]]:
    """``(image file, category, train | test)`` for every entry of the official split file."""
    split_file = src / SPLIT_FILE
    if not split_file.is_file():
        raise MissingFileError(f"split file not found: {split_file}; expected the {LAYOUT}")
    try:
        records = json.loads(split_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{split_file}: not valid JSON ({err})") from None
    if not isinstance(records, list) or not records:
        raise DataError(f"{split_file}: expected a non-empty list of {{file_path_img, file_path_ann, split}}")
    entries = []
    for k, record in enumerate(records):
        where = f"{split_file}, entry {k}"
        try:
            path, split = Path(record["file_path_img"]), record["split"]
        except (TypeError, KeyError) as err:
            raise DataError(f"{where}: no {err}; expected file_path_img and split") from None
        category = path.parent.parent.name
        if category not in CATEGORIES:
            raise DataError(f"{where}: category {category!r}; expected one of {', '.join(CATEGORIES)}")
        if split not in OFFICIAL_SPLITS:
            raise DataError(f"{where}: split {split!r}; expected one of {', '.join(OFFICIAL_SPLITS)}")
        image_file = src / category / "images" / path.name
        mask_file = src / category / "annotations" / f"{path.stem}.PNG"
        for file in (image_file, mask_file):
            if not file.is_file():
                raise MissingFileError(f"{where}: file not found: {file}")
        size, mask_size = image_size(image_file), image_size(mask_file)  # from the headers: cheap
        if size != mask_size:
            warnings.warn(f"{mask_file}: annotation is {mask_size[0]}×{mask_size[1]} but image {image_file} is "
                          f"{size[0]}×{size[1]} (H×W); image left out", stacklevel=3)
            continue
        entries.append((str(image_file), category, OFFICIAL_SPLITS[split]))
    return entries


@lru_cache(maxsize=4)  # an image's two tasks are loaded one after the other
def _decode(image_file: Path, mask_file: Path, category: str) -> tuple[np.ndarray, np.ndarray]:
    image = load_image(image_file)
    try:
        with open_image(mask_file, mask_file) as annotation:  # the pixel bound, before decoding
            colours = np.asarray(annotation.convert("RGB"))
    except FileNotFoundError:
        raise MissingFileError(f"annotation file not found: {mask_file}") from None
    except ImageFormatError as err:
        raise DataError(str(err)) from None
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{mask_file}: not a readable annotation image ({err})") from None
    if colours.shape[:2] != image.shape[:2]:
        raise DataError(f"{mask_file}: annotation is {colours.shape[0]}×{colours.shape[1]} but image {image_file} "
                        f"is {image.shape[0]}×{image.shape[1]} (H×W); expected the same size")
    tumour = np.all(colours == CATEGORIES[category], axis=-1)
    background = ~colours.any(axis=-1)
    stray = ~(tumour | background)
    if stray.any():
        found = sorted({tuple(int(v) for v in c) for c in colours[stray][:1000]})
        raise DataError(f"{mask_file}: colour(s) {found[:4]} in a {category} annotation; expected black and "
                        f"{CATEGORIES[category]} only")
    for array in (image, tumour):  # cached and shared by the image's samples: keep them intact
        array.setflags(write=False)
    return image, tumour


def _sample(image_file: Path, mask_file: Path, task: str, category: str, meta: dict) -> Sample:
    image, tumour = _decode(image_file, mask_file, category)
    if task == "ovary_tumor_cls":
        label = list(CATEGORIES).index(category)
    else:
        label = tumour.astype(np.uint8)
    return Sample(image, task, label, source=str(image_file), meta={**meta, "mask_file": str(mask_file)})
