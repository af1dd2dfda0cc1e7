"""A run's per-task table: which model trained each task, its headline metric and normalised score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation.kind_evaluations import EVALUATIONS
from ..tasks import get_task
from ..training.engine import TrainResult


@dataclass
class RunSummary:
    name: str
    tasks: list[str]
    result: TrainResult


def task_rows(runs: Sequence[RunSummary]) -> list[dict]:
    """One row per task: the run that trained it, its type, headline metric and normalised score."""
    rows = []
    for run in runs:
        metrics = run.result.metrics
        for task in run.tasks:
            spec = get_task(task)
            evaluation = EVALUATIONS[spec.label_kind.name]
            result = metrics.get(evaluation.section, {}).get(task, {})
            headline = evaluation.headline[0]
            rows.append({"task": task, "model": run.name, "type": evaluation.section, "group": spec.group,
                         "metric": headline,
                         "value": result.get(headline), "score": run.result.scores.get(task)})
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| task | model | type | metric | value | normalised score |", "|---|---|---|---|---|---|"]
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        score = "n/a" if r["score"] is None else f"{r['score']:.3f}"
        lines.append(f"| {r['task']} | {r['model']} | {r['type']} | {r['metric']} | {value} | {score} |")
    scores = [r["score"] for r in rows if r["score"] is not None]
    if scores:
        lines.append(f"\nMean normalised score over {len(scores)} tasks: **{np.mean(scores):.3f}** "
                     "(DSC; (accuracy + macro F1)/2; IoU; 1 − MRE/(10% of the diagonal); 1 − MAE/mean target)")
    return "\n".join(lines)


def write_summary(output_dir: Path, runs: Sequence[RunSummary], title: str) -> str:
    rows = task_rows(runs)
    table = markdown_table(rows)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "summary.md").write_text(f"# {title}\n\n{table}\n")
    (output_dir / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return table
