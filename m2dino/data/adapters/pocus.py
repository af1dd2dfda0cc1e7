"""POCUS lung ultrasound (Born et al. 2021, "pocovid"), frames, published layout::

    <src>/data/image_dataset/{covid,pneumonia,regular}/<video>_frame<k>.jpg   frames of a video
                                                      /<image>.jpg|png      single images
    <src>/data/cross_validation/split0..4/<class>/<same file names>           the published folds
    <src>/data/dataset_metadata.csv                                           Filename, License, ...

(``src`` may also be the ``data`` folder itself.) Gives ``lung_disease_3cls`` samples: covid,
pneumonia and regular are the task's classes 0, 1 and 2 (the benchmark does not publish its
class names; ``meta['class_name']`` keeps POCUS's). Frames of one video are near-duplicates, so
the split follows the published cross-validation folds, which hold each video whole (checked):
fold `TEST_FOLD` is test, `VAL_FOLD` val, the others train. ``meta['video']`` is the video (or
single image) a frame comes from, ``meta['license']`` its license from the metadata (the
dataset mixes licenses, several non-commercial). A few single images are RGBA PNGs with an
opaque alpha channel, which is dropped (a transparent pixel would be an error).
"""

from __future__ import annotations

import csv
import re
from functools import partial
from pathlib import Path

import numpy as np

from ...image import ImageFormatError, read_image, to_rgb_uint8
from ..collection import LazySample, SampleCollection
from ..errors import DataError, MissingFileError
from ..sample import Sample
from .common import image_files, require_dir

NAME = "pocus"
TASKS = ("lung_disease_3cls",)
CLASSES = ("covid", "pneumonia", "regular")  # lung_disease_3cls class order
TEST_FOLD, VAL_FOLD = 0, 1
LAYOUT = "POCUS layout: data/image_dataset/<class>/*.jpg and data/cross_validation/split<k>/<class>/"
_FRAME = re.compile(r"_frame\d+$")


def video_of(file_name: str) -> str:
    """The video a frame file comes from (``Cov-Atlas+(44).gif_frame12.jpg`` -> ``Cov-Atlas+(44).gif``);
    a single image is its own video (its name without the suffix)."""
    stem = Path(file_name).stem
    return _FRAME.sub("", stem)


def load(src: str | Path, test_fold: int = TEST_FOLD, val_fold: int | None = VAL_FOLD) -> dict[str, SampleCollection]:
    """``{"train", "val", "test"}`` -> lazy samples (no "val" when ``val_fold`` is None)."""
    src = Path(src)
    root = src / "data" if (src / "data" / "image_dataset").is_dir() else src
    folds = _folds(require_dir(root / "cross_validation", LAYOUT))
    if test_fold not in set(folds.values()) or (val_fold is not None and val_fold not in set(folds.values())):
        raise DataError(f"{root / 'cross_validation'}: test_fold={test_fold}, val_fold={val_fold}; expected "
                        f"fold numbers among {sorted(set(folds.values()))}")
    if test_fold == val_fold:
        raise DataError(f"test_fold and val_fold are both {test_fold}; expected two different folds")
    licenses = _licenses(root / "dataset_metadata.csv")
    splits: dict[str, list[LazySample]] = {"train": [], "test": []} if val_fold is None else {
        "train": [], "val": [], "test": []}
    video_fold: dict[str, tuple[int, str]] = {}
    for label, name in enumerate(CLASSES):
        for image_file in image_files(require_dir(root / "image_dataset" / name, LAYOUT)):
            key = f"{name}/{image_file.name}"
            if key not in folds:
                raise DataError(f"{image_file}: in no fold of {root / 'cross_validation'}; expected "
                                f"split<k>/{key} in exactly one fold")
            fold, video = folds.pop(key), video_of(image_file.name)
            first = video_fold.setdefault(video, (fold, image_file.name))
            if first[0] != fold:
                raise DataError(f"{root / 'cross_validation'}: video {video!r} is in fold {first[0]} "
                                f"({first[1]}) and fold {fold} ({image_file.name}); expected whole videos per fold")
            split = "test" if fold == test_fold else "val" if fold == val_fold else "train"
            meta = {"dataset": NAME, "split": split, "class_name": name, "video": video, "fold": fold,
                    "license": licenses.get(Path(video).stem, "unknown"), "name": image_file.stem}
            splits[split].append(LazySample("lung_disease_3cls", str(image_file),
                                             partial(_sample, image_file, label, meta),
                                             meta, files=(str(image_file),), label=label))
    if folds:
        extra = sorted(folds)
        raise MissingFileError(f"{root / 'cross_validation'}: {len(extra)} fold file(s) not in "
                               f"{root / 'image_dataset'} (e.g. {', '.join(extra[:3])})")
    if not any(splits.values()):
        raise DataError(f"{root / 'image_dataset'}: empty dataset (no images)")
    return {split: SampleCollection(items) for split, items in splits.items()}


def _sample(image_file: Path, label: int, meta: dict) -> Sample:
    try:
        image = np.asarray(read_image(image_file))
        if image.ndim == 3 and image.shape[2] == 4:
            if (image[..., 3] != 255).any():
                raise DataError(f"{image_file}: RGBA image with transparent pixels; expected gray, RGB or an "
                                "opaque alpha channel")
            image = image[..., :3]
        image = to_rgb_uint8(image, name=str(image_file))
    except FileNotFoundError:
        raise MissingFileError(f"image file not found: {image_file}") from None
    except ImageFormatError as err:
        raise DataError(str(err)) from None
    return Sample(image, "lung_disease_3cls", label, source=str(image_file), meta=dict(meta))


def _folds(folder: Path) -> dict[str, int]:
    """``"<class>/<file name>"`` -> fold number, from ``split<k>/<class>/``; a file in two folds is an error."""
    folds: dict[str, int] = {}
    fold_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"split\d+", p.name))
    if not fold_dirs:
        raise DataError(f"{folder}: no split<k> folders; expected the published folds split0..split4")
    for fold_dir in fold_dirs:
        fold = int(fold_dir.name[len("split"):])
        for name in CLASSES:
            if not (fold_dir / name).is_dir():
                continue
            for file in image_files(fold_dir / name):
                key = f"{name}/{file.name}"
                if key in folds:
                    raise DataError(f"{file}: also in fold {folds[key]}; expected every frame in one fold")
                folds[key] = fold
    return folds


def _licenses(csv_file: Path) -> dict[str, str]:
    """Metadata ``Filename`` (a video's name without its suffix) -> ``License``; {} without the file."""
    if not csv_file.is_file():
        return {}
    with csv_file.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"Filename", "License"} <= rows[0].keys():
        raise DataError(f"{csv_file}: no Filename and License columns; expected POCUS's dataset_metadata.csv")
    return {row["Filename"].strip(): row["License"].strip() or "unknown" for row in reversed(rows)}
