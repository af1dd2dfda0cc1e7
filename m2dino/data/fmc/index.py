"""Reading an FMC_UIA root: a cheap, validated index of its CSV rows (no pixel data decoded)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...image import ImageFormatError, read_image, to_rgb_uint8
from ...tasks import LabelError, UnknownTaskError, get_task, list_tasks
from ..collection import LazySample, SampleCollection
from ..csv_io import cell, read_csv_rows
from ..errors import DataError, MissingFileError, location
from ..mask_io import image_size, read_mask
from ..sample import Sample, validate_label
from .layout import COMMON_COLUMNS, CSV_DIR, META_COLUMN, TASK_NAMES, label_columns


@dataclass
class FMCRecord:
    """One validated CSV row. ``image_path``/``mask_path`` are the CSV's strings unchanged (the
    submission format keys predictions by them); ``image_file``/``mask_file`` are resolved paths.
    ``label``: class int, box array (4,), keypoints array (K, 2), scalar float, or None for a mask."""

    task_id: str
    task_type: str
    num_classes: int
    csv_file: Path
    csv_row: int
    image_path: str
    image_file: Path
    mask_path: str | None
    mask_file: Path | None
    label: int | float | np.ndarray | None
    image_size: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return location(self.csv_file, self.csv_row)

    def load_image(self) -> np.ndarray:
        """The image as uint8 H×W×3 (gray replicated to three channels)."""
        try:
            return to_rgb_uint8(read_image(self.image_file), name=str(self.image_file))
        except FileNotFoundError:
            raise MissingFileError(f"{self.where}: image file not found: {self.image_file}") from None
        except ImageFormatError as err:
            raise DataError(f"{self.where}: {err}") from None

    def load_mask(self) -> np.ndarray:
        """The mask as uint8 H×W class indices, range-checked against ``num_classes``."""
        if self.mask_file is None:
            raise DataError(f"{self.where}: task {self.task_id!r} is {self.task_type}; it has no mask")
        try:
            mask = read_mask(self.mask_file)
        except DataError as err:
            raise type(err)(f"{self.where}: {err}") from None
        if mask.size and mask.max() >= self.num_classes:
            bad = sorted(int(v) for v in np.unique(mask) if v >= self.num_classes)
            raise DataError(f"{self.where}: mask {self.mask_file} holds values {bad[:10]}; expected class "
                            f"indices 0..{self.num_classes - 1}")
        return mask

    def to_sample(self) -> Sample:
        """Decode the row into a `Sample`; ``meta['image_path']`` keeps the CSV's image string."""
        label = self.load_mask() if self.mask_file is not None else self.label
        meta = {**self.meta, "image_path": self.image_path, "csv_file": str(self.csv_file), "csv_row": self.csv_row}
        try:
            return Sample(self.load_image(), self.task_id, label, source=str(self.image_file), meta=meta)
        except DataError as err:
            raise DataError(f"{self.where}: {err}") from None

    def lazy(self) -> LazySample:
        files = (str(self.image_file),) + ((str(self.mask_file),) if self.mask_file is not None else ())
        label = self.label[None] if isinstance(self.label, np.ndarray) and self.label.ndim == 1 else self.label
        # The CSV's meta rides along undecoded: it names the original image (`image_key`).
        return LazySample(self.task_id, str(self.image_file), self.to_sample,
                          {**self.meta, "image_path": self.image_path}, files=files, label=label)


@dataclass(frozen=True)
class Problem:
    """A row or file that failed validation (collected by `scan_fmc` instead of raised)."""

    task: str | None
    message: str


def read_fmc_index(root: str | Path, tasks: list[str] | None = None) -> list[FMCRecord]:
    """Every row of ``root/csv_files/*.csv`` (all CSVs concatenated), validated, in file order.

    Checks columns, task ids, ``task_name`` and ``num_classes`` against the registry, that image
    and mask files exist and open, mask size = image size (from the PNG headers), class range,
    box order and keypoint count/JSON. Raises `DataError` naming the CSV file and row at the first
    problem, and for an empty result. ``tasks`` keeps only those task ids (validated).
    """
    return _scan(root, tasks, collect=False)[0]


def scan_fmc(root: str | Path, tasks: list[str] | None = None) -> tuple[list[FMCRecord], list[Problem]]:
    """Like `read_fmc_index` but collects row problems instead of raising (for `m2dino data check`);
    a missing ``csv_files/`` folder still raises."""
    return _scan(root, tasks, collect=True)


def read_fmc(root: str | Path, tasks: list[str] | None = None, lazy: bool = False) -> list[Sample] | SampleCollection:
    """All samples of an FMC root, decoded (``lazy=True``: a `SampleCollection` decoding on access)."""
    collection = SampleCollection(record.lazy() for record in read_fmc_index(root, tasks))
    return collection if lazy else collection.materialize()


def _scan(root: str | Path, tasks: list[str] | None, collect: bool) -> tuple[list[FMCRecord], list[Problem]]:
    root = Path(root)
    csv_dir = root / CSV_DIR
    if not csv_dir.is_dir():
        splits = sorted(p.name for p in root.iterdir() if (p / CSV_DIR).is_dir()) if root.is_dir() else []
        hint = f"; it holds the split roots {', '.join(splits)}: pass one, e.g. {root / splits[0]}" if splits else ""
        raise MissingFileError(f"{root}: no {CSV_DIR}/ folder; expected an FMC_UIA root "
                               f"({CSV_DIR}/*.csv next to Segmentation/, Classification/, ...){hint}")
    csv_files = sorted(csv_dir.glob("*.csv"))
    if not csv_files:
        raise DataError(f"{csv_dir}: no *.csv files; expected the FMC_UIA CSVs there")
    wanted = None if tasks is None else {get_task(t).id for t in tasks}
    records: list[FMCRecord] = []
    problems: list[Problem] = []

    def report(task: str | None, err: DataError) -> None:
        if not collect:
            raise err
        problems.append(Problem(task, str(err)))

    for csv_file in csv_files:
        try:
            rows = read_csv_rows(csv_file, COMMON_COLUMNS)
        except DataError as err:
            report(None, err)
            continue
        if not rows:  # a header and no rows: its task would silently vanish from training and checks
            task = _task_of_csv_name(csv_file)
            if wanted is None or task in wanted:
                report(task, DataError(f"{csv_file}: a header and no rows; expected at least one row"
                                       f"{f' of task {task!r}' if task else ''} "
                                       "(remove the file if the task is unused)"))
            continue
        first_rows: dict[tuple, int] = {}  # (task, image, label) -> the CSV row that has it first
        for number, row in rows:
            task = row.get("task_id")
            if wanted is not None and task not in wanted:
                continue
            try:
                record = _parse_row(row, csv_file, number)
                _check_not_repeated(record, first_rows)
                records.append(record)
            except DataError as err:
                report(task, err)
    if not records and not problems:
        which = f" for tasks {sorted(wanted)}" if wanted is not None else ""
        raise DataError(f"{root}: empty dataset: no CSV rows{which} in {', '.join(f.name for f in csv_files)}")
    return records, problems


def _check_not_repeated(record: FMCRecord, first_rows: dict[tuple, int]) -> None:
    """A row repeating an earlier row of its CSV (same task, image and label) would be trained and
    scored twice: refused, naming both rows (remove one; a deliberate oversampling belongs in the
    sampler's --alpha, not in the CSV)."""
    label = record.mask_file if record.mask_file is not None else np.asarray(record.label).tolist()
    key = (record.task_id, record.image_file, json.dumps(label, default=str))
    first = first_rows.setdefault(key, record.csv_row)
    if first != record.csv_row:
        raise DataError(f"{record.where}: repeats row {first} (same image {record.image_path!r} and label); "
                        "expected each image once per task: remove the duplicate row")


def _task_of_csv_name(csv_file: Path) -> str | None:
    """The task a CSV is named after (``<split>_<task>.csv``, as the writer names them), if any."""
    ids = [t.id for t in list_tasks() if csv_file.stem == t.id or csv_file.stem.endswith(f"_{t.id}")]
    return max(ids, key=len) if ids else None


def _parse_row(row: dict[str, str], csv_file: Path, number: int) -> FMCRecord:
    where = location(csv_file, number)
    task_id = cell(row, "task_id", where)
    try:
        spec = get_task(task_id)
    except UnknownTaskError as err:
        raise DataError(f"{where}: {err}") from None
    task_name = cell(row, "task_name", where)
    expected_name = TASK_NAMES[spec.type]
    if task_name.lower() != expected_name.lower():
        raise DataError(f"{where}: task_name {task_name!r} for task {task_id!r}; expected {expected_name!r}")
    num_classes = _parse_int(cell(row, "num_classes", where), "num_classes", where)
    if num_classes != spec.num_classes:
        raise DataError(f"{where}: num_classes {num_classes} for task {task_id!r}; the registry says "
                        f"{spec.num_classes}")
    for column in label_columns(spec):
        if column not in row:
            raise DataError(f"{where}: column {column!r} missing; {spec.label_kind.name} rows of task {task_id!r} need "
                            f"{', '.join(label_columns(spec))}")
    csv_dir = csv_file.parent
    image_path = cell(row, "image_path", where)
    image_file = _existing_file(csv_dir, image_path, "image", where)
    size = _header_size(image_file, where)
    mask_path = mask_file = label = None
    if spec.label_kind.stored_as_file:
        mask_path = cell(row, "mask_path", where)
        mask_file = _existing_file(csv_dir, mask_path, "mask", where)
        mask_size = _header_size(mask_file, where)
        if mask_size != size:
            raise DataError(f"{where}: mask {mask_file} is {mask_size[0]}×{mask_size[1]} but image {image_file} is "
                            f"{size[0]}×{size[1]} (H×W); expected the same size")
    else:
        kind = spec.label_kind
        try:
            cells = {column: cell(row, column, where) for column in label_columns(spec)}
            label = kind.row_label(validate_label(spec, kind.parse_cells(cells, where), size, where))
        except LabelError as err:
            raise DataError(str(err)) from None
    return FMCRecord(task_id, task_name, num_classes, csv_file, number, image_path, image_file, mask_path,
                     mask_file, label, size, _parse_meta(row, where))


def _parse_meta(row: dict[str, str], where: str) -> dict[str, Any]:
    text = (row.get(META_COLUMN) or "").strip()
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise DataError(f"{where}: {META_COLUMN} = {text[:60]!r}; expected a JSON object")
    return meta


def _parse_int(text: str, column: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise DataError(f"{where}: {column} = {text!r}; expected an integer")
    return int(value)


def _existing_file(csv_dir: Path, path: str, what: str, where: str) -> Path:
    # CSV paths are relative to csv_files/; normalise separators written on Windows.
    file = Path(os.path.normpath(csv_dir / path.replace("\\", "/")))
    root = Path(os.path.normpath(csv_dir.parent))
    if not Path(os.path.abspath(file)).is_relative_to(os.path.abspath(root)):  # before the file is looked at
        raise DataError(f"{where}: {what}_path {path!r} leads outside the FMC root {root}; expected a file "
                        "inside the root (copy it in)")
    if not file.is_file():
        raise MissingFileError(f"{where}: {what} file not found: {file} ({what}_path {path!r})")
    real = file.resolve()
    if not real.is_relative_to(root.resolve()):  # a link inside the root that leads out of it
        raise DataError(f"{where}: {what}_path {path!r} links to {real}, outside the FMC root {root}; expected "
                        "a file inside the root (copy it in)")
    return file


def _header_size(file: Path, where: str) -> tuple[int, int]:
    try:
        return image_size(file)
    except DataError as err:
        raise DataError(f"{where}: {err}") from None
