"""The submission layout (see `m2dino.evaluation.kind_evaluations` for its files) and a writer for it, from
typed predictions."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..models.predictions import Prediction
from ..tasks import UnknownTaskError, get_task
from .kind_evaluations import BY_PREDICTION, EVALUATIONS, KindEvaluation


def prediction_mask_path(mask_path: str) -> PurePosixPath:
    """Where a segmentation prediction lives inside a submission: the CSV's ``mask_path`` with every
    ``../`` removed, exactly as the challenge's evaluator looks it up (``replace('../', '')``)."""
    relative = PurePosixPath(mask_path.replace("../", ""))
    if not mask_path or relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"mask_path {mask_path!r} does not name a file inside the submission folder")
    return relative


@dataclass(frozen=True)
class SubmissionEntry:
    """One prediction and the identity of the ground-truth row it answers.

    ``image_path`` is the CSV's string unchanged; ``mask_path`` (the CSV's, segmentation only) says
    where the PNG goes; ``original_size`` (height, width), when given, is checked against the mask.
    """

    task_id: str
    image_path: str
    prediction: Prediction
    mask_path: str | None = None
    original_size: tuple[int, int] | None = None

    @classmethod
    def for_record(cls, record: object, prediction: Prediction) -> "SubmissionEntry":
        """The entry answering an `m2dino.data.fmc.FMCRecord` (its CSV strings and image size)."""
        return cls(record.task_id, record.image_path, prediction, record.mask_path, tuple(record.image_size))


@dataclass
class WrittenSubmission:
    root: Path
    counts: dict[str, int]                                   # entries written per file / "Segmentation"
    skipped: list[str] = field(default_factory=list)         # why an entry was not written


def _evaluation(entry: SubmissionEntry) -> KindEvaluation:
    evaluation = BY_PREDICTION.get(type(entry.prediction))
    if evaluation is None:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: a {type(entry.prediction).__name__} has no place "
                         "in the submission format")
    try:
        expected = get_task(entry.task_id).label_kind.name
    except UnknownTaskError:
        return evaluation  # a user's task that is not registered: its prediction type decides
    if expected != evaluation.kind:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: task {entry.task_id!r} has {expected} labels "
                         f"but got a {type(entry.prediction).__name__}")
    return evaluation


def _write_mask(entry: SubmissionEntry, root: Path) -> None:
    if entry.mask_path is None:
        raise ValueError(f"{entry.task_id} / {entry.image_path}: a segmentation entry needs the CSV's mask_path")
    mask = np.asarray(entry.prediction.mask)
    if mask.ndim != 2 or mask.dtype.kind not in "ui" or (mask.size and (mask.min() < 0 or mask.max() > 255)):
        raise ValueError(f"{entry.task_id} / {entry.image_path}: expected an H×W integer mask of class indices "
                         f"0..255, got shape {mask.shape} dtype {mask.dtype}")
    if entry.original_size is not None and mask.shape != tuple(entry.original_size):
        raise ValueError(f"{entry.task_id} / {entry.image_path}: mask of size {mask.shape} but the image is "
                         f"{tuple(entry.original_size)}; predictions must be at the original size")
    path = root / prediction_mask_path(entry.mask_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8)).save(path)  # uint8 H×W is mode L


def write_submission(entries: Iterable[SubmissionEntry], out_dir: str | Path) -> WrittenSubmission:
    """Write the submission folder: every JSON file of `m2dino.evaluation.kind_evaluations` (always, possibly
    empty lists; the measurement file only when there are measurements, so a pure benchmark
    submission has exactly the challenge's files) and one gray PNG per segmentation entry. A
    detection without any box is not written (the scorer then counts that image as missing) and is
    listed in ``skipped``."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[dict]] = {e.kind: [] for e in EVALUATIONS.values() if e.file}
    counts = {e.file: 0 for e in EVALUATIONS.values() if e.file} | {"Segmentation": 0}
    skipped: list[str] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.task_id, entry.image_path)
        if key in seen:
            raise ValueError(f"{entry.task_id} / {entry.image_path}: two predictions for the same image")
        seen.add(key)
        evaluation = _evaluation(entry)
        if evaluation.file is None:
            _write_mask(entry, root)
            counts["Segmentation"] += 1
            continue
        try:
            record = evaluation.to_entry(entry.prediction)
        except ValueError as err:
            raise ValueError(f"{entry.task_id} / {entry.image_path}: {err}") from None
        if record is None:
            skipped.append(f"{entry.task_id} / {entry.image_path}: detection without any box")
            continue
        files[evaluation.kind].append({"image_path": entry.image_path, "task_id": entry.task_id, **record})
        counts[evaluation.file] += 1
    for kind, records in files.items():
        evaluation = EVALUATIONS[kind]
        if evaluation.official or records:
            (root / evaluation.file).write_text(json.dumps(records, indent=1))
    return WrittenSubmission(root, counts, skipped)
