"""Batched inference of an M2DINO model over an FMC_UIA root: submission entries, and the whole
evaluation (`m2dino evaluate`, the zoo's release pipeline and the recipe study all run
`evaluate_fmc_root`), and the constant predictor's evaluation over the same root (`evaluate_constant`),
written and scored the same way so that the two are read side by side."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..data.fmc import FMCRecord, read_fmc_index
from ..image import ResizeGeometry
from ..models import M2DINO
from ..models.batch_prediction import predict_batches
from ..tasks import get_task
from .constant_baseline import fit_constant_predictor
from .scoring.fmc_root import score_fmc_submission
from .scoring.per_submission import write_metrics
from .submission import SubmissionEntry, WrittenSubmission, write_submission


@dataclass
class RootEvaluation:
    metrics: dict                       # as metrics.json holds it
    submission: WrittenSubmission       # OUT/submission
    tasks_without_head: dict[str, int]  # task -> images the model has no head for (reported, not dropped)
    files: tuple[Path, Path]            # OUT/metrics.json, OUT/metrics.md


def evaluate_fmc_root(model: M2DINO, root: str | Path, out: str | Path, tasks: Sequence[str] | None = None,
                      batch_size: int = 16, progress: bool = True) -> RootEvaluation:
    """``model`` over the FMC root ``root`` (only ``tasks``, else every task it has): OUT/submission in the
    challenge's format, scored by the official rules into OUT/metrics.json and OUT/metrics.md."""
    records = read_fmc_index(root, tasks=list(tasks) if tasks else None)
    entries, skipped = predict_records(model, records, batch_size, progress=progress)
    scored = list(tasks) if tasks else sorted({r.task_id for r in records})
    return score_entries(entries, root, out, scored, progress, tasks_without_head=skipped)


def score_entries(entries: Sequence[SubmissionEntry], root: str | Path, out: str | Path, tasks: Sequence[str],
                  progress: bool = True, tasks_without_head: dict[str, int] | None = None) -> RootEvaluation:
    """Any predictor's ``entries`` for the FMC root ``root``: written as OUT/submission and scored into
    OUT/metrics.json and OUT/metrics.md, as `evaluate_fmc_root` does for a model."""
    out = Path(out)
    written = write_submission(entries, out / "submission")
    metrics = score_fmc_submission(root, written.root, tasks=list(tasks), progress=progress)
    if tasks_without_head is not None:
        # Tasks the model has no head for stay in the report as problems ("missing"), with this reason:
        metrics["summary"]["tasks_without_head"] = tasks_without_head
    files = write_metrics(metrics, out / "metrics.json")
    return RootEvaluation(metrics, written, tasks_without_head or {}, files)


def evaluate_constant(training: dict, root: str | Path, out: str | Path, tasks: Sequence[str],
                      grid: tuple[int, int], progress: bool = True) -> RootEvaluation:
    """The constant predictor of each task (fitted on ``training``: task → its training samples, on a
    letterboxed ``grid``) over the FMC root ``root``, written and scored like a model's submission."""
    records = read_fmc_index(root, tasks=list(tasks))
    predictors = {task: fit_constant_predictor(get_task(task), training[task], grid) for task in tasks}
    entries = [SubmissionEntry.for_record(r, predictors[r.task_id](
        ResizeGeometry.create(tuple(r.image_size), grid, "letterbox"))) for r in records]
    return score_entries(entries, root, out, tasks, progress)


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
