"""The ``"summary"`` part of metrics.json: unweighted means of each task's headline metrics, per
section (label kind) and per clinical group.

The means use the STRICT values (a missing or invalid prediction counts as a failure, see
`m2dino.evaluation.scoring.per_task`), over every task of the section; the challenge's own values stay
in the per-task sections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ..tasks import UnknownTaskError, get_task
from .kind_evaluations import BY_SECTION

HEADLINE_METRICS: dict[str, tuple[str, ...]] = {section: e.headline for section, e in BY_SECTION.items()}
ADDITIONAL_METRICS: dict[str, tuple[str, ...]] = {section: e.additional for section, e in BY_SECTION.items()
                                                  if e.additional}
UNGROUPED = "unregistered"


def registry_group(task_id: str) -> str:
    """The task's clinical group from the registry; `UNGROUPED` for a task it does not know."""
    try:
        return get_task(task_id).group
    except UnknownTaskError:
        return UNGROUPED


def _mean(values: Iterable[float]) -> float:
    # NaN marks an undefined value (e.g. an AUC without both classes): left out, not counted as 0.
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def type_means(section: str, task_ids: Iterable[str], results: Mapping[str, dict], extras: Mapping[str, dict]) -> dict:
    task_ids = list(task_ids)
    means = {m: _mean(extras[t]["strict"][m] for t in task_ids) for m in HEADLINE_METRICS[section]}
    means |= {m: _mean(extras[t].get(m) for t in task_ids) for m in ADDITIONAL_METRICS.get(section, ())}
    return {**means, "num_tasks": len(task_ids), "num_samples": sum(results[t]["num_samples"] for t in task_ids)}


def build_summary(results: Mapping[str, Mapping[str, dict]], extras: Mapping[str, dict],
                  groups: Mapping[str, str]) -> dict:
    """``results``: section -> task -> the challenge's dict; ``extras``: task -> additional metrics
    with ``"strict"``; ``groups``: task -> clinical group."""
    by_type = {section: type_means(section, tasks, tasks, extras) for section, tasks in results.items()}
    by_group: dict[str, dict] = {}
    for group in dict.fromkeys(groups[t] for tasks in results.values() for t in tasks):
        by_group[group] = {section: type_means(section, [t for t in tasks if groups[t] == group], tasks, extras)
                           for section, tasks in results.items() if any(groups[t] == group for t in tasks)}
    return {"by_type": by_type, "by_group": by_group}
