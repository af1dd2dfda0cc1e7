"""The ``"summary"`` part of metrics.json: unweighted means of each task's headline metrics, per task
type and per clinical group, over the tasks that scored at least one image."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ..tasks import UnknownTaskError, get_task

HEADLINE_METRICS: dict[str, tuple[str, ...]] = {
    "segmentation": ("DSC", "HD"),
    "classification": ("Accuracy", "F1_macro", "F1_weighted", "MCC", "AUC"),
    "detection": ("IoU",),
    "regression": ("MRE",),
}
ADDITIONAL_METRICS: dict[str, tuple[str, ...]] = {"segmentation": ("HD95", "NSD"), "detection": ("AP50",)}
UNGROUPED = "unregistered"


def registry_group(task_id: str) -> str:
    """The task's clinical group from the registry; `UNGROUPED` for a task it does not know."""
    try:
        return get_task(task_id).group
    except UnknownTaskError:
        return UNGROUPED


def _mean(values: Iterable[float]) -> float:
    # NaN marks an undefined value (e.g. AUC without both classes): left out, not counted as 0.
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def type_means(kind: str, task_ids: Iterable[str], results: Mapping[str, dict], extras: Mapping[str, dict]) -> dict:
    scored = [t for t in task_ids if results[t]["num_samples"] > 0]
    means = {m: _mean(results[t][m] for t in scored) for m in HEADLINE_METRICS[kind]}
    means |= {m: _mean(extras.get(t, {}).get(m) for t in scored) for m in ADDITIONAL_METRICS.get(kind, ())}
    return {**means, "num_tasks": len(scored), "num_samples": sum(results[t]["num_samples"] for t in scored)}


def build_summary(results: Mapping[str, Mapping[str, dict]], extras: Mapping[str, dict],
                  groups: Mapping[str, str]) -> dict:
    """``results``: type -> task -> the challenge's dict; ``groups``: task -> clinical group."""
    by_type = {kind: type_means(kind, tasks, tasks, extras) for kind, tasks in results.items()}
    by_group: dict[str, dict] = {}
    for group in dict.fromkeys(groups[t] for tasks in results.values() for t in tasks):
        by_group[group] = {kind: type_means(kind, [t for t in tasks if groups[t] == group], tasks, extras)
                           for kind, tasks in results.items() if any(groups[t] == group for t in tasks)}
    return {"by_type": by_type, "by_group": by_group}
