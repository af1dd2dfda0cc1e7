"""A generic importer: a folder of images plus a mask folder and/or a CSV of labels, for any task.

::

    <src>/<images>/<name>.<png|jpg|bmp|gif|tif...>
    <src>/<masks>/<name>.<any image format>      segmentation tasks: matched by file stem
    <src>/<labels>                               other tasks: a CSV with an ``image`` column
                                                 (file name or stem in <images>) and
        class     -> label       (class index or class name from the registry)
        boxes     -> x_min,y_min,x_max,y_max (one row per box; several rows for several boxes)
        keypoints -> point_1_xy, ..., point_K_xy (JSON [x, y], as in the FMC layout)
        scalar    -> value
    and optionally ``split`` (otherwise every sample goes to ``split``).

Masks hold class indices (``binary_masks=True`` maps any non-zero value to 1, for 0/255 masks).
A mask whose size differs from its image is an error unless ``resize_masks=True``. Every image
needs a label and every label an image: nothing is skipped.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ...tasks import LabelError, TaskSpec, get_task
from ..collection import LazySample, SampleCollection
from ..csv_io import cell, read_csv_rows
from ..errors import DataError, location
from ..mask_io import image_size
from ..sample import validate_label
from .common import image_files, labelled_sample, masked_sample, require_dir

NAME = "folder"
LAYOUT = "folder layout: <images>/ with <masks>/ (segmentation) or a labels CSV (other tasks)"


def load(src: str | Path, task: str, images: str = "images", masks: str = "masks", labels: str = "labels.csv",
         split: str = "train", dataset: str | None = None, binary_masks: bool = False,
         resize_masks: bool = False) -> dict[str, SampleCollection]:
    """``{split: lazy samples}`` of ``task`` (splits from the CSV's ``split`` column if it has one)."""
    src, spec = Path(src), get_task(task)
    files = image_files(require_dir(src / images, LAYOUT))
    if not files:
        raise DataError(f"{src / images}: empty dataset (no image files)")
    by_stem = _unique_stems(files, src / images)
    meta_base = {"dataset": dataset or src.name}
    if spec.label_kind.stored_as_file:
        mask_by_stem = _unique_stems(image_files(require_dir(src / masks, LAYOUT)), src / masks)
        _check_pairs(by_stem, mask_by_stem, src / images, src / masks)
        items = []
        for stem, image_file in by_stem.items():
            mask_file = mask_by_stem[stem]
            if not resize_masks and image_size(image_file) != image_size(mask_file):
                size, mask_size = image_size(image_file), image_size(mask_file)
                raise DataError(f"{mask_file}: mask is {mask_size[0]}×{mask_size[1]} but image {image_file} is "
                                f"{size[0]}×{size[1]} (H×W); expected the same size (or pass resize_masks=True)")
            meta = {**meta_base, "split": split, "name": stem}
            items.append(LazySample(spec.id, str(image_file), partial(
                masked_sample, image_file, mask_file, spec.id, meta, binary_masks, resize_masks), meta,
                files=(str(image_file), str(mask_file))))
        return {split: SampleCollection(items)}
    return _from_csv(src / labels, spec, by_stem, split, meta_base)


def _unique_stems(files: list[Path], folder: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for file in files:
        if file.stem in by_stem:
            raise DataError(f"{folder}: {by_stem[file.stem].name} and {file.name} share the stem {file.stem!r}; "
                            "expected one file per name")
        by_stem[file.stem] = file
    return by_stem


def _check_pairs(images: dict[str, Path], masks: dict[str, Path], image_dir: Path, mask_dir: Path) -> None:
    for missing, here, there in ((sorted(images.keys() - masks.keys()), image_dir, mask_dir),
                                 (sorted(masks.keys() - images.keys()), mask_dir, image_dir)):
        if missing:
            raise DataError(f"{here}: {len(missing)} file(s) without a partner of the same stem in {there} "
                            f"(e.g. {', '.join(missing[:3])})")


def _from_csv(csv_file: Path, spec: TaskSpec, by_stem: dict[str, Path], default_split: str,
              meta_base: dict) -> dict[str, SampleCollection]:
    columns = _label_columns(spec)
    labels: dict[str, list] = {}
    split_of: dict[str, str] = {}
    for number, row in read_csv_rows(csv_file, ("image", *columns)):
        where = location(csv_file, number)
        stem = Path(cell(row, "image", where)).stem
        if stem not in by_stem:
            raise DataError(f"{where}: image {row['image']!r} not found in {next(iter(by_stem.values())).parent}")
        split_of[stem] = (row.get("split") or "").strip() or default_split
        value = _parse(spec, row, columns, where)
        if spec.label_kind.rows_per_image == "many":
            labels.setdefault(stem, []).append(value)
        elif stem in labels:
            raise DataError(f"{where}: a second label for image {stem!r}; expected one row per image")
        else:
            labels[stem] = value
    unlabelled = sorted(by_stem.keys() - labels.keys())
    if unlabelled:
        raise DataError(f"{csv_file}: no label for {len(unlabelled)} image(s) (e.g. {', '.join(unlabelled[:3])}); "
                        "every image needs a row")
    out: dict[str, list[LazySample]] = {}
    for stem, image_file in by_stem.items():
        label = np.array(labels[stem]) if spec.label_kind.rows_per_image == "many" else labels[stem]
        validate_label(spec, label, image_size(image_file), str(image_file))
        meta = {**meta_base, "split": split_of[stem], "name": stem}
        out.setdefault(split_of[stem], []).append(
            LazySample(spec.id, str(image_file), partial(labelled_sample, image_file, spec.id, label, meta), meta,
                       files=(str(image_file),), label=label))
    return {split: SampleCollection(items) for split, items in out.items()}


# The importer's CSV names the class column "label" (the FMC layout's is "mask"); the others are the FMC's.
_COLUMN_NAMES = {"mask": "label"}


def _label_columns(spec: TaskSpec) -> tuple[str, ...]:
    return tuple(_COLUMN_NAMES.get(c, c) for c in spec.label_kind.csv_columns)


def _parse(spec: TaskSpec, row: dict[str, str], columns: tuple[str, ...], where: str):
    kind = spec.label_kind
    cells = {column: cell(row, column, where) for column in columns}
    if cells.get("label") in spec.class_names:  # the importer also takes class names
        cells["label"] = str(spec.class_names.index(cells["label"]))
    try:
        return kind.parse_cells(cells, where)
    except LabelError as err:
        raise DataError(str(err)) from None
