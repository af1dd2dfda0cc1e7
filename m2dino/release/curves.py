"""The loss curves of a release's training run, drawn from its log.jsonl (one PNG for the card)."""

from __future__ import annotations

import json
from pathlib import Path

CURVES_FILE = "loss_curves.png"


def read_training_log(log: Path) -> tuple[list[dict], list[dict]]:
    """(step records with a loss, validation records with a mean score), in step order; a resumed run's
    repeated steps keep their last record."""
    steps: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    for line in Path(log).read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            steps[record["step"]] = record
        elif "mean_score" in record:
            evals[record["step"]] = record
    return [steps[s] for s in sorted(steps)], [evals[s] for s in sorted(evals)]


def plot_training_curves(log: Path, output: Path) -> Path | None:
    """Each task's loss against the step (a running mean over its last 10 steps, since one task is drawn
    per step) and the validation mean score; None when the log holds no step."""
    records, evals = read_training_log(log)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2 if evals else 1, figsize=(9 if evals else 5, 3), squeeze=False)
    by_task: dict[str, list[tuple[int, float]]] = {}
    for record in records:
        by_task.setdefault(record.get("task", "all"), []).append((record["step"], record.get("task_loss",
                                                                                               record["loss"])))
    for task, points in sorted(by_task.items()):
        values = [v for _, v in points]
        smooth = [sum(values[max(0, i - 9):i + 1]) / len(values[max(0, i - 9):i + 1]) for i in range(len(values))]
        axes[0][0].plot([s for s, _ in points], smooth, lw=1, marker="." if len(points) < 50 else None, label=task)
    axes[0][0].set_title("training loss per task", fontsize=9)
    axes[0][0].set_xlabel("step", fontsize=8)
    axes[0][0].legend(fontsize=6)
    if evals:
        axes[0][1].plot([r["step"] for r in evals], [r["mean_score"] for r in evals], marker="o", lw=1)
        axes[0][1].set_title("validation mean normalised score", fontsize=9)
        axes[0][1].set_xlabel("step", fontsize=8)
    for axis in axes[0]:
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return Path(output)
