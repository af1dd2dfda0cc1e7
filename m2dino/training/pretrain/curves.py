"""Loss curves of a pretraining run, drawn from its JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

CURVES_FILE = "loss_curves.png"
CURVES = ("loss", "dino_loss", "ibot_loss", "koleo_loss", "gram_loss")


def read_log(path: Path) -> list[dict]:
    """The training records (steps with losses) of a log, in order; a resumed run's repeated steps keep
    their last record."""
    records: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            records[record["step"]] = record
    return [records[step] for step in sorted(records)]


def plot_loss_curves(log: Path, output: Path) -> Path | None:
    """One panel per loss, the teacher's spread (log scale) and its entropy (fraction of ln K) against
    the step; None for an empty log."""
    records = read_log(log)
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    names = [n for n in (*CURVES, "teacher_spread", "teacher_entropy") if any(n in r for r in records)]
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
    for axis, name in zip(axes[0], names):
        points = [(r["step"], r[name]) for r in records if name in r]
        axis.plot(*zip(*points), lw=1)
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        if name == "teacher_spread":
            axis.set_yscale("log")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return Path(output)
