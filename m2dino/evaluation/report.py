"""The markdown table written beside metrics.json."""

from __future__ import annotations

import math

from .kind_evaluations import LOWER_IS_BETTER
from .problems import PROBLEM_KINDS
from .summary import ADDITIONAL_METRICS, HEADLINE_METRICS


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def _metric_names(kind: str) -> list[str]:
    return [*HEADLINE_METRICS[kind], *ADDITIONAL_METRICS.get(kind, ())]


def _label(name: str) -> str:
    return f"{name} ↓" if name in LOWER_IS_BETTER else name


def markdown_report(metrics: dict) -> str:
    summary = metrics["summary"]
    kinds = [k for k in HEADLINE_METRICS if k in metrics]
    tolerance = summary["settings"]["nsd_tolerance_px"]
    lines = ["# Benchmark scores", "",
             "By type and by group: unweighted means over tasks of the STRICT values, in which a missing or "
             "invalid prediction counts as a failure (Dice 0, HD and MRE = the image diagonal, a wrong class, "
             "IoU 0, an error of |true value|). Per task: the challenge's own values, over the images with a "
             "usable prediction (segmentation: then over the non-background classes). ↓ = lower is better. "
             f"HD, HD95 and MRE in pixels; NSD at {tolerance:g} px; AP50 = AP at IoU 0.5 (VOC all-point). "
             "— = undefined or not computed.", ""]
    lines += ["## By task type", ""]
    for kind in kinds:
        names = _metric_names(kind)
        means = summary["by_type"][kind]
        row = [means["num_tasks"], means["num_samples"], *(means[n] for n in names)]
        lines += [f"**{kind}**", "", *_table(["tasks", "images", *map(_label, names)], [row]), ""]
    lines += ["## By clinical group", ""]
    for kind in kinds:
        names = _metric_names(kind)
        rows = [[group, by_kind[kind]["num_tasks"], *(by_kind[kind][n] for n in names)]
                for group, by_kind in summary["by_group"].items() if kind in by_kind]
        lines += [f"**{kind}**", "", *_table(["group", "tasks", *map(_label, names)], rows), ""]
    lines += ["## Per task", ""]
    for kind in kinds:
        names = _metric_names(kind)
        rows = []
        for task, result in metrics[kind].items():
            extra = summary["additional_metrics"].get(task, {})
            scored = result["num_samples"] > 0
            values = [(result[n] if n in result else extra.get(n)) if scored else None for n in names]
            rows.append([task, summary["groups"][task], result["num_samples"], *values,
                         summary["problems"][task]["missing"]])
        lines += [f"**{kind}**", "", *_table(["task", "group", "images", *map(_label, names), "missing"], rows), ""]
    troubled = {t: p for t, p in summary["problems"].items()
                if any(p[k] for k in PROBLEM_KINDS) or p["notes"]}
    lines += ["## Problems", ""]
    if troubled:
        lines += _table(["task", *PROBLEM_KINDS], [[t, *(p[k] for k in PROBLEM_KINDS)] for t, p in troubled.items()])
        lines += ["", *(f"- {t}: {note}" for t, p in troubled.items() for note in p["notes"]), ""]
    else:
        lines += ["None: every ground-truth image has one usable prediction.", ""]
    lines += ["Kinds:", "", *(f"- **{k}**: {v}" for k, v in PROBLEM_KINDS.items()), ""]
    return "\n".join(lines)
