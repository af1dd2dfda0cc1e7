"""DDTI thyroid nodules (Pedraza et al. 2015), as processed by xuao575/DDTI_preprocessing::

    <src>/cropped/<case>_<image>[(<nodule>)].png   300×300 crop of one nodule (image 1 of case 139: 139_1;
                                                   its second nodule: 139_1(2))
    <src>/mask/<same id>.gif                       0 / 255
    <src>/diagnosis.csv                            no header: id, TI-RADS (2, 3, 4a, 4b, 4c, 5 or None), 0/1

Every crop gives ``thyroid_nodule`` (the mask), ``thyroid_nodule_det`` (its box) and, when its
case has a TI-RADS category, ``thyroid_tirads_cls``. TI-RADS belongs to the case (the patient),
so all crops of a case share it. A crop without a mask or a CSV row is an error; a CSV row
without a crop is skipped (the published CSV lists two, 362_1(1) and 362_1(2)). A crop whose mask
is empty (7 published ones lost their nodule in the preprocessing) is left out with a warning
naming it. Crops are split by case with `SPLIT_SEED` and `SPLIT_FRACTIONS`.
"""

from __future__ import annotations

import csv
import re
import warnings
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from ...tasks import get_task
from ..collection import LazySample, SampleCollection
from ..errors import DataError, MissingFileError, location
from ..labels import box_of_mask
from ..mask_io import read_mask
from ..sample import Sample
from .common import load_image, require_dir, split_groups

NAME = "ddti"
TASKS = ("thyroid_nodule", "thyroid_nodule_det", "thyroid_tirads_cls")
SPLIT_SEED = 0
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
LAYOUT = "DDTI layout: cropped/<id>.png, mask/<id>.gif and diagnosis.csv"
NO_TIRADS = "None"
_ID = re.compile(r"^(?P<case>\d+)_\d+(\(\d+\))?$")


def load(src: str | Path, seed: int = SPLIT_SEED,
         fractions: dict[str, float] | None = None) -> dict[str, SampleCollection]:
    """``{"train", "val", "test"}`` -> lazy samples (each crop's tasks consecutively), sorted by id."""
    src = Path(src)
    crops = {p.stem: p for p in sorted(require_dir(src / "cropped", LAYOUT).glob("*.png"))}
    if not crops:
        raise DataError(f"{src / 'cropped'}: empty dataset (no .png crops)")
    tirads = _diagnoses(src / "diagnosis.csv")
    tirads_classes = [name.removeprefix("tirads_") for name in get_task("thyroid_tirads_cls").class_names]
    cases = {}
    for name, crop in crops.items():
        match = _ID.match(name)
        if not match:
            raise DataError(f"{crop}: file name {crop.name!r}; expected <case>_<image>[(<nodule>)].png")
        if name not in tirads:
            raise DataError(f"{crop}: no row {name!r} in {src / 'diagnosis.csv'}")
        mask_file = src / "mask" / f"{name}.gif"
        if not mask_file.is_file():
            raise MissingFileError(f"{crop}: mask file not found: {mask_file}")
        if not read_mask(mask_file).any():  # small GIFs: cheap to check here
            warnings.warn(f"{mask_file}: empty nodule mask; crop {crop.name} left out", stacklevel=2)
            continue
        cases[name] = match.group("case")
    fractions = fractions or SPLIT_FRACTIONS
    split_of = split_groups(list(cases.values()), fractions, seed)
    splits: dict[str, list[LazySample]] = {split: [] for split in fractions}
    for name, crop in crops.items():
        if name not in cases:
            continue
        split, category, mask_file = split_of[cases[name]], tirads[name], src / "mask" / f"{name}.gif"
        meta = {"dataset": NAME, "split": split, "patient": cases[name], "tirads": category, "name": name}
        for task in TASKS:
            label = None
            if task == "thyroid_tirads_cls":
                if category == NO_TIRADS:
                    continue
                if category not in tirads_classes:
                    raise DataError(f"{src / 'diagnosis.csv'}: {name}: TI-RADS {category!r}; expected one of "
                                    f"{', '.join(tirads_classes)} or {NO_TIRADS}")
                label = tirads_classes.index(category)
            splits[split].append(LazySample(task, str(crop), partial(_sample, crop, mask_file, task, label, meta),
                                            meta, files=(str(crop), str(mask_file)), label=label))
    return {split: SampleCollection(items) for split, items in splits.items()}


def _diagnoses(csv_file: Path) -> dict[str, str]:
    """id -> TI-RADS category (``None`` when the case has none)."""
    if not csv_file.is_file():
        raise MissingFileError(f"CSV file not found: {csv_file}; expected the {LAYOUT}")
    out = {}
    with csv_file.open(newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row:
                continue
            if len(row) < 2:
                raise DataError(f"{location(csv_file, number)}: {row}; expected id, TI-RADS[, 0/1]")
            out[row[0].strip()] = row[1].strip()
    return out


@lru_cache(maxsize=4)  # a crop's tasks are loaded one after the other
def _decode(crop: Path, mask_file: Path) -> tuple[np.ndarray, np.ndarray]:
    image = load_image(crop)
    mask = (read_mask(mask_file) > 0).astype(np.uint8)
    if mask.shape != image.shape[:2]:
        raise DataError(f"{mask_file}: mask is {mask.shape[0]}×{mask.shape[1]} but image {crop} is "
                        f"{image.shape[0]}×{image.shape[1]} (H×W); expected the same size")
    if not mask.any():
        raise DataError(f"{mask_file}: empty nodule mask; expected a nodule")
    for array in (image, mask):  # cached and shared by the crop's samples: keep them intact
        array.setflags(write=False)
    return image, mask


def _sample(crop: Path, mask_file: Path, task: str, label: int | None, meta: dict) -> Sample:
    image, mask = _decode(crop, mask_file)
    target = {"thyroid_nodule": lambda: mask, "thyroid_nodule_det": lambda: box_of_mask(mask),
              "thyroid_tirads_cls": lambda: label}[task]()
    return Sample(image, task, target, source=str(crop), meta={**meta, "mask_file": str(mask_file)})
