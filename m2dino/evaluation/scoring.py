"""Score a submission against ground truth: the challenge's metrics.json plus our ``"summary"``.

```
{"segmentation":   {task: {"DSC", "HD", "num_samples", "per_class": {"class_c": {"DSC", "HD"}}}},
 "classification": {task: {"AUC", "Accuracy", "F1_macro", "F1_weighted", "MCC", "num_samples", "per_class"}},
 "detection":      {task: {"IoU", "num_samples"}},
 "regression":     {task: {"MRE", "num_samples"}},
 "summary": {"by_type", "by_group", "additional_metrics": {task: {"HD95", "NSD", ...} | {"AP50"}},
             "problems": {task: {"missing", "invalid", ...,"notes"}}, "settings"}}
```
A type appears when the ground truth has a task of it. Undefined values (NaN) are written as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from ..tasks import TaskType
from .ground_truth import GroundTruth
from .problems import TaskProblems
from .report import markdown_report
from .submission import PREDICTION_FILES
from .submission_reader import Submission
from .summary import build_summary, registry_group
from .task_scoring import score_classification, score_detection, score_regression, score_segmentation

TYPE_ORDER = (TaskType.SEGMENTATION, TaskType.CLASSIFICATION, TaskType.DETECTION, TaskType.REGRESSION)
AP_IOU_THRESHOLD = 0.5


def _rows_by_task(ground_truth: Iterable[GroundTruth], tasks: Collection[str] | None) -> dict[str, list[GroundTruth]]:
    rows: dict[str, list[GroundTruth]] = {}
    for row in ground_truth:
        if tasks is None or row.task_id in tasks:
            rows.setdefault(row.task_id, []).append(row)
    if tasks is not None and set(tasks) - set(rows):
        raise ValueError(f"task(s) not in the ground truth: {', '.join(sorted(set(tasks) - set(rows)))}")
    for task, task_rows in rows.items():
        kinds = {(r.task_type, r.num_classes) for r in task_rows}
        if len(kinds) > 1:
            raise ValueError(f"task {task!r}: ground-truth rows disagree on type / num_classes: {sorted(kinds)}")
    return rows


def _score_task(rows: list[GroundTruth], submission: Submission, problems: TaskProblems,
                nsd_tolerance: float, progress: bool) -> tuple[dict, dict]:
    kind, task = rows[0].task_type, rows[0].task_id
    if kind is TaskType.SEGMENTATION:
        return score_segmentation(rows, submission.load_mask, problems, nsd_tolerance, progress)
    if PREDICTION_FILES[kind] in submission.absent_files:
        problems.note(f"no {PREDICTION_FILES[kind]} in the submission")
    predictions = submission.task_predictions(kind, task)
    if kind is TaskType.CLASSIFICATION:
        return score_classification(rows, predictions, problems)
    if kind is TaskType.DETECTION:
        return score_detection(rows, predictions, problems, AP_IOU_THRESHOLD)
    return score_regression(rows, predictions, problems)


def _count_foreign_predictions(rows: Mapping[str, list[GroundTruth]], submission: Submission,
                               tasks: Collection[str] | None, problems: dict[str, TaskProblems]) -> None:
    """Predictions of a task the ground truth lacks, or filed under another type, are counted, not scored."""
    for kind, by_task in submission.predictions.items():
        for task, predictions in by_task.items():
            task_rows = rows.get(task)
            if (task_rows and task_rows[0].task_type is kind) or (tasks is not None and task not in tasks):
                continue
            reason = ("task not in the ground truth" if task_rows is None
                      else f"the task is {task_rows[0].task_type.value} in the ground truth")
            example = f"{len(predictions)} entries in {PREDICTION_FILES[kind]}: {reason}"
            problems.setdefault(task, TaskProblems()).add("unexpected", example, count=len(predictions))


def score_submission(ground_truth: Iterable[GroundTruth], submission: Submission, *,
                     tasks: Collection[str] | None = None, nsd_tolerance: float = 2.0,
                     groups: Mapping[str, str] | None = None, progress: bool = False) -> dict:
    """The metrics dict for ``submission`` (see the module docstring). ``tasks`` restricts scoring
    (predictions of other tasks are then ignored); ``groups`` maps task -> clinical group (default:
    the registry's)."""
    rows = _rows_by_task(ground_truth, tasks)
    problems = {task: TaskProblems() for task in rows}
    results: dict[str, dict[str, dict]] = {}
    extras: dict[str, dict] = {}
    for kind in TYPE_ORDER:
        for task, task_rows in rows.items():
            if task_rows[0].task_type is kind:
                result, extra = _score_task(task_rows, submission, problems[task], nsd_tolerance, progress)
                results.setdefault(kind.value, {})[task] = result
                if extra:
                    extras[task] = extra
    _count_foreign_predictions(rows, submission, tasks, problems)
    for task, count in submission.duplicates.items():
        if tasks is None or task in tasks:
            problems.setdefault(task, TaskProblems()).add("duplicate", count=count)
    task_groups = {task: (groups or {}).get(task) or registry_group(task) for task in rows}
    summary = build_summary(results, extras, task_groups)
    summary |= {"additional_metrics": extras,
                "problems": {task: p.to_dict() for task, p in problems.items()},
                "groups": task_groups,
                "settings": {"nsd_tolerance_px": nsd_tolerance, "ap_iou_threshold": AP_IOU_THRESHOLD}}
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
