"""Score a submission against ground truth: the challenge's metrics.json plus our sections.

```
{"segmentation":   {task: {"DSC", "HD", "num_samples", "per_class": {"class_c": {"DSC", "HD"}}}},
 "classification": {task: {"AUC", "Accuracy", "F1_macro", "F1_weighted", "MCC", "num_samples", "per_class"}},
 "detection":      {task: {"IoU", "num_samples"}},
 "regression":     {task: {"MRE", "num_samples"}},
 "measurement":    {task: {"MAE", "relative_error", "num_samples"}},          (m2dino's extension)
 "summary": {"by_type", "by_group"  (strict values),
             "additional_metrics": {task: {"strict": {...}, "HD95", "NSD", "AUC_present_classes", "AP50", ...}},
             "problems": {task: {"missing", "invalid", ..., "notes"}}, "complete", "settings"}}
```
The four challenge sections hold exactly the organisers' evaluator's keys and values. A section
appears when the ground truth has a task of its kind. Undefined values (NaN) are written as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from ..ground_truth import GroundTruth
from ..kind_evaluations import EVALUATIONS, KindEvaluation
from ..problems import TaskProblems
from ..report import markdown_report
from ..submission import prediction_mask_path
from ..submission_reader import Submission
from ..summary import build_summary, registry_group
from .per_task import PredictionOf, ScoreSettings

STRAY_MASKS = "(no task)"   # where PNGs that answer no ground-truth mask are reported


def _rows_by_task(ground_truth: Iterable[GroundTruth], tasks: Collection[str] | None) -> dict[str, list[GroundTruth]]:
    rows: dict[str, list[GroundTruth]] = {}
    for row in ground_truth:
        if tasks is None or row.task_id in tasks:
            rows.setdefault(row.task_id, []).append(row)
    if tasks is not None and set(tasks) - set(rows):
        raise ValueError(f"task(s) not in the ground truth: {', '.join(sorted(set(tasks) - set(rows)))}")
    for task, task_rows in rows.items():
        kinds = {(r.kind, r.num_classes) for r in task_rows}
        if len(kinds) > 1:
            raise ValueError(f"task {task!r}: ground-truth rows disagree on label kind / num_classes: {sorted(kinds)}")
    return rows


def _count_foreign_predictions(rows: Mapping[str, list[GroundTruth]], submission: Submission,
                               tasks: Collection[str] | None, problems: dict[str, TaskProblems]) -> None:
    """Predictions of a task the ground truth lacks, or filed under another kind, are counted, not scored."""
    for kind, by_task in submission.predictions.items():
        for task, predictions in by_task.items():
            task_rows = rows.get(task)
            if (task_rows and task_rows[0].kind == kind) or (tasks is not None and task not in tasks):
                continue
            reason = ("task not in the ground truth" if task_rows is None
                      else f"the task's labels are {task_rows[0].kind} in the ground truth")
            example = f"{len(predictions)} entries in {EVALUATIONS[kind].file}: {reason}"
            problems.setdefault(task, TaskProblems()).add("unexpected", example, count=len(predictions))


def _prediction_of(evaluation: KindEvaluation, rows: list[GroundTruth], submission: Submission,
                   problems: TaskProblems) -> PredictionOf:
    """Where the scorer finds each row's prediction: a mask by its ``mask_path``, any other entry by
    ``image_path`` in the kind's file (whose absence, and entries for images the task lacks, are noted)."""
    if evaluation.file is None:
        return lambda row: submission.load_mask(row.mask_path)
    if evaluation.file in submission.absent_files:
        problems.note(f"no {evaluation.file} in the submission")
    predictions = submission.task_predictions(evaluation.kind, rows[0].task_id)
    known = {row.image_path for row in rows}
    for image_path in predictions:
        if image_path not in known:
            problems.add("unexpected", f"{image_path}: not in the ground truth of this task")
    return lambda row: predictions.get(row.image_path)


def _count_stray_masks(rows: Mapping[str, list[GroundTruth]], submission: Submission,
                       problems: dict[str, TaskProblems]) -> None:
    """PNGs in the submission that answer no ground-truth mask (a typo in a path scores nothing)."""
    expected = {prediction_mask_path(r.mask_path).as_posix() for task_rows in rows.values() for r in task_rows
                if r.mask_path is not None}
    stray = sorted(submission.mask_files() - expected)
    if stray:
        entry = problems.setdefault(STRAY_MASKS, TaskProblems())
        for path in stray:
            entry.add("unexpected", f"{path}: a PNG that matches no ground-truth mask_path")


def score_submission(ground_truth: Iterable[GroundTruth], submission: Submission, *,
                     tasks: Collection[str] | None = None, nsd_tolerance: float = 2.0,
                     groups: Mapping[str, str] | None = None, progress: bool = False) -> dict:
    """The metrics dict for ``submission`` (see the module docstring). ``tasks`` restricts scoring
    (predictions of other tasks are then ignored); ``groups`` maps task -> clinical group (default:
    the registry's)."""
    settings = ScoreSettings(nsd_tolerance=nsd_tolerance, progress=progress)
    rows = _rows_by_task(ground_truth, tasks)
    problems = {task: TaskProblems() for task in rows}
    results: dict[str, dict[str, dict]] = {}
    extras: dict[str, dict] = {}
    for evaluation in EVALUATIONS.values():
        for task, task_rows in rows.items():
            if task_rows[0].kind == evaluation.kind:
                prediction_of = _prediction_of(evaluation, task_rows, submission, problems[task])
                result, extra = evaluation.score(task_rows, prediction_of, problems[task], settings)
                results.setdefault(evaluation.section, {})[task] = result
                extras[task] = extra
    _count_foreign_predictions(rows, submission, tasks, problems)
    if tasks is None:
        _count_stray_masks(rows, submission, problems)
    for task, count in submission.duplicates.items():
        if tasks is None or task in tasks:
            problems.setdefault(task, TaskProblems()).add("duplicate", count=count)
    task_groups = {task: (groups or {}).get(task) or registry_group(task) for task in rows}
    summary = build_summary(results, extras, task_groups)
    failed = sum(p.counts["missing"] + p.counts["invalid"] for p in problems.values())
    summary |= {"additional_metrics": extras,
                "problems": {task: p.to_dict() for task, p in problems.items()},
                "complete": failed == 0,
                "groups": task_groups,
                "settings": {"nsd_tolerance_px": nsd_tolerance, "ap_iou_threshold": settings.ap_iou_threshold}}
    return {**results, "summary": summary}


def _null_nan(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _null_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_null_nan(v) for v in value]
    return value


def write_metrics(metrics: dict, path: str | Path) -> tuple[Path, Path]:
    """Write ``metrics`` as JSON (NaN as null) at ``path`` and the markdown report beside it (``.md``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_null_nan(metrics), indent=2, allow_nan=False) + "\n")
    report = path.with_suffix(".md")
    report.write_text(markdown_report(metrics))
    return path, report
