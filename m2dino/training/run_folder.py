"""A training run's folder: which files it owns, claiming it, and writing models and metrics into it.

A run owns its output folder: a new run refuses a folder that is not empty (``overwrite=True``
removes the previous run's outputs first, and nothing else).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.report import markdown_report
from ..models import M2DINO
from .checkpoint import write_atomically, write_into
from .validation import evaluate_model

# What a run writes into its output folder (``overwrite`` removes these and nothing else).
# example.png: the model card's picture, drawn by the recipes (m2dino.visualize.card) after the final save.
# The task-affinity files of `recipes/unified.py --affinity-every`: measurements as made, report, grouping.
AFFINITY_OUTPUTS = ("task_affinity_measurements.jsonl", "task_affinity.json", "task_affinity_groups.json")
# run.yaml: the run's config, written by the recipes (m2dino.recipes.run_config) once the folder is claimed.
RUN_OUTPUTS = ("checkpoints", "best", "log.jsonl", "metrics.json", "model.safetensors", "config.json", "README.md",
               "m2dino", "summary.md", "summary.json", "example.png", "partner", "run.yaml", *AFFINITY_OUTPUTS)


def claim_output_dir(output_dir: Path, overwrite: bool, outputs: Sequence[str] = RUN_OUTPUTS) -> None:
    """A new run starts in an empty folder: another run's checkpoints and log would mix with its own.
    ``overwrite`` removes that run's ``outputs`` (only the names a run writes; other files stay)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir() or not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"output folder {output_dir} is not empty (a previous run?): pass --resume latest to "
                              "continue it, --overwrite to replace it, or another --output-dir")
    for name in outputs:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def compact_metrics(metrics: dict) -> dict:
    """Metrics without the per-image problem lists (kept short for the JSONL log)."""
    summary = {k: v for k, v in metrics.get("summary", {}).items() if k not in ("problems", "additional_metrics")}
    return {**{k: v for k, v in metrics.items() if k != "summary"}, "summary": summary}


def save_model(model: M2DINO, directory: Path, metrics: dict, recorded_config: dict, name: str,
               replace_folder: bool = True) -> None:
    """The model with its card (evaluation table, training config) into ``directory``: replacing the
    folder atomically (``best/``), or writing its files into it atomically (the run's own folder)."""
    extra = {"evaluation_table": markdown_report(metrics) if metrics else None,
             "training_config": recorded_config, "model_name": name}
    write = write_atomically if replace_folder else write_into
    write(directory, lambda tmp: model.save_pretrained(tmp, card_extra=extra))


def save_final_outputs(folder: Path, model: M2DINO, metrics: dict, recorded_config: dict, name: str,
                       partner=None, val_samples: dict | None = None, batch_size: int = 16) -> None:
    """The trained model, its metrics.json and (cps) the co-trained partner, scored beside it."""
    save_model(model, folder, metrics, recorded_config, name, replace_folder=False)
    (folder / "metrics.json").write_text(json.dumps(compact_metrics(metrics), indent=2) + "\n")
    if partner is not None:
        write_atomically(folder / "partner", partner.save_pretrained)
        if val_samples:
            scored = evaluate_model(partner, val_samples, batch_size=batch_size)
            (folder / "partner" / "metrics.json").write_text(json.dumps(compact_metrics(scored), indent=2) + "\n")
