"""Batched inference of an M2DINO model over an FMC_UIA root, as submission entries."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ..data.fmc import FMCRecord
from ..models import M2DINO
from .submission import SubmissionEntry


@torch.no_grad()
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
    model.eval()
    entries: list[SubmissionEntry] = []
    bar = tqdm(total=sum(map(len, by_task.values())), desc="predict", unit="img", disable=not progress)
    for task, task_records in by_task.items():
        for start in range(0, len(task_records), batch_size):
            chunk = task_records[start:start + batch_size]
            images = [r.load_image() for r in chunk]
            pixel_values, geometries = model.preprocess(images)
            output = model(pixel_values, task=task)
            for i, record in enumerate(chunk):
                entries.append(SubmissionEntry.for_record(record, model.postprocess(output, i, geometries[i])))
            bar.update(len(chunk))
    bar.close()
    return entries, skipped
