"""Batched inference of an M2DINO model over an FMC_UIA root, as submission entries."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm

from ..data.fmc import FMCRecord
from ..models import M2DINO
from ..models.batch_prediction import predict_batches
from .submission import SubmissionEntry


def predict_records(model: M2DINO, records: Sequence[FMCRecord], batch_size: int = 16,
                    progress: bool = True) -> tuple[list[SubmissionEntry], dict[str, int]]:
    """Predictions (original pixels) for every record of a task the model has; the rest are
    returned as per-task counts of skipped images, never silently dropped."""
    by_task: dict[str, list[FMCRecord]] = {}
    skipped: dict[str, int] = {}
    for record in records:
        if record.task_id in model.heads:
            by_task.setdefault(record.task_id, []).append(record)
        else:
            skipped[record.task_id] = skipped.get(record.task_id, 0) + 1
    entries: list[SubmissionEntry] = []
    with tqdm(total=sum(map(len, by_task.values())), desc="predict", unit="img", disable=not progress) as bar:
        for task, task_records in by_task.items():
            images = (record.load_image() for record in task_records)  # read a batch at a time
            for prediction, record in zip(predict_batches(model, images, task, batch_size), task_records):
                entries.append(SubmissionEntry.for_record(record, prediction))
                bar.update()
    return entries, skipped
