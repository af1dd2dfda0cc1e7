"""Writing samples into the FMC_UIA layout (images, masks and one CSV per task)."""

from __future__ import annotations

import csv
import re
import shutil
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ...tasks import LabelError, get_task
from ..errors import DataError
from ..mask_io import write_image, write_mask
from ..sample import Sample, meta_to_json
from .layout import COMMON_COLUMNS, CSV_DIR, META_COLUMN, TASK_NAMES, label_columns, type_dir

# Keys `read_fmc` adds to a sample's meta; writing them back would make them stale.
_READER_KEYS = ("image_path", "csv_file", "csv_row")


def write_fmc(samples: Iterable[Sample], root: str | Path, split_name: str = "train", dataset: str | None = None,
              overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write ``samples`` (any mix of tasks) under ``root`` so that ``read_fmc(root)`` gives them back.

    Files go to ``<TypeDir>/<dataset>/<split_name>/IMAGES|MASKS/<name>.png`` (``dataset`` defaults
    to ``meta['dataset']``, else the task id) and rows to ``csv_files/<split_name>_<task>.csv``, so
    several splits or datasets can share one root. An image shared by several tasks of the same
    type is written once. Images and masks are written as PNG (lossless); ``meta`` goes to an extra
    JSON column the challenge's tools ignore. Returns the CSV files written.
    """
    root = Path(root)
    writer = _LayoutWriter(root, split_name, dataset, overwrite)
    for sample in tqdm(samples, desc=f"writing {root}", unit="sample", disable=not progress):
        writer.add(sample)
    return writer.finish()


class _LayoutWriter:
    def __init__(self, root: Path, split_name: str, dataset: str | None, overwrite: bool) -> None:
        if not re.fullmatch(r"[\w.-]+", split_name):
            raise DataError(f"split_name {split_name!r}: expected letters, digits, '_', '-' or '.'")
        self.root, self.split, self.dataset, self.overwrite = root, split_name, dataset, overwrite
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.written: dict[Path, str] = {}  # file -> source it holds, to share or de-duplicate names
        # The last few images encoded, by source: an image shared by tasks of different types is
        # copied rather than encoded again (PNG encoding dominates the time of a conversion).
        self.recent: OrderedDict[str, tuple[Path, np.ndarray]] = OrderedDict()

    def add(self, sample: Sample) -> None:
        spec = sample.spec
        if spec.id not in self.rows and self._csv_path(spec.id).exists() and not self.overwrite:
            raise DataError(f"{self._csv_path(spec.id)} exists; pass overwrite=True to replace it")
        dataset = _safe_name(self.dataset or str(sample.meta.get("dataset") or spec.id))
        folder = Path(type_dir(spec)) / dataset / self.split
        name = self._free_name(folder / "IMAGES", _stem(sample), sample.source)
        image_rel = folder / "IMAGES" / f"{name}.png"
        if image_rel not in self.written:
            self._write_image(sample, self.root / image_rel)
            self.written[image_rel] = sample.source
        row: dict[str, Any] = {"task_id": spec.id, "task_name": TASK_NAMES[spec.type],
                               "num_classes": spec.num_classes, "image_path": f"../{image_rel.as_posix()}"}
        if spec.label_kind.stored_as_file:
            mask_rel = folder / "MASKS" / f"{name}.png"
            write_mask(sample.label, self.root / mask_rel)
            row["mask_path"] = f"../{mask_rel.as_posix()}"
        else:
            try:
                row.update(spec.label_kind.format_cells(sample.label, sample.source))
            except LabelError as err:
                raise DataError(str(err)) from None
        meta = {k: v for k, v in sample.meta.items() if k not in _READER_KEYS}
        if meta:
            row[META_COLUMN] = meta_to_json(meta)
        self.rows.setdefault(spec.id, []).append(row)

    def _write_image(self, sample: Sample, path: Path) -> None:
        previous = self.recent.get(sample.source)
        if previous is not None and np.array_equal(previous[1], sample.image):
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(previous[0], path)
        else:
            write_image(sample.image, path)
        self.recent[sample.source] = (path, sample.image)
        if len(self.recent) > 8:
            self.recent.popitem(last=False)

    def _free_name(self, folder: Path, stem: str, source: str) -> str:
        """``stem`` unless another source already took it in this folder (then ``stem_1``, ...)."""
        name, k = stem, 0
        while self.written.get(folder / f"{name}.png", source) != source:
            k += 1
            name = f"{stem}_{k}"
        return name

    def _csv_path(self, task: str) -> Path:
        return self.root / CSV_DIR / f"{self.split}_{task}.csv"

    def finish(self) -> list[Path]:
        if not self.rows:
            raise DataError(f"{self.root}: nothing to write (no samples)")
        csv_dir = self.root / CSV_DIR
        csv_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for task, rows in self.rows.items():
            path = self._csv_path(task)
            columns = [*COMMON_COLUMNS, *label_columns(get_task(task))]
            if any(META_COLUMN in row for row in rows):
                columns.append(META_COLUMN)
            with path.open("w", newline="") as handle:
                out = csv.DictWriter(handle, fieldnames=columns)
                out.writeheader()
                out.writerows(rows)
            written.append(path)
        return written


def _stem(sample: Sample) -> str:
    return _safe_name(str(sample.meta.get("name") or Path(sample.source).stem or sample.task))


def _safe_name(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text).strip("_.") or "sample"

