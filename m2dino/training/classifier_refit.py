"""Classifier refit (``--two-stage-steps``, the FETUS 2026 second stage): classification heads
re-learned on a frozen, semi-supervised model.

After semi-supervised training, the shared features are good for the dense tasks but the
classification heads have fitted pseudo-labels of their own making. The FETUS method therefore
freezes everything, re-initialises the classification heads and fine-tunes only them on the
labelled images. The result is a complete model (dense heads from stage 1), saved in
``OUTPUT/stage2`` and scored on every task's validation data.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..data.loading import LoaderConfig
from ..data.transforms import AugmentConfig
from ..models import M2DINO
from ..models.heads import build_head
from .checkpoint import latest_checkpoint
from .data_sources import TrainingData
from .engine import Trainer, TrainResult
from .train_config import TrainConfig


def reset_classification_heads(model: M2DINO) -> list[str]:
    """Re-initialise the classification heads and make them the only trainable parameters; their tasks."""
    tasks = [t for t in model.task_ids if model.heads[t].label_kind == "class"]
    model.requires_grad_(False)
    for task in tasks:
        model.heads[task] = build_head(model.task_spec(task), model.backbone.embed_dim, model.config.decoder_features)
    return tasks


def refit_classification_heads(model: M2DINO, data: TrainingData, stage_one: TrainConfig, steps: int,
                               loading: LoaderConfig | None = None, progress: bool = True, resume: bool = False,
                               overwrite: bool = False, augment: AugmentConfig | None = None) -> TrainResult:
    """``--two-stage-steps``: re-initialise ``model``'s classification heads and train only them for
    ``steps`` steps on the labelled data, into ``OUTPUT/stage2``, with the first stage's augmentation."""
    tasks = [t for t in reset_classification_heads(model) if t in data.train]
    if not tasks:
        raise ValueError(f"--two-stage-steps: none of the trained tasks {sorted(data.train)} is a classification "
                         "task; the second stage re-learns classification heads only")
    output_dir = Path(stage_one.output_dir) / "stage2"
    config = replace(stage_one, output_dir=str(output_dir), steps=steps, semi=None, lora_rank=None,
                     freeze_backbone=False, warmup_steps=min(stage_one.warmup_steps, max(1, steps // 10)),
                     eval_every=max(1, steps), tasks=tasks)
    checkpoint = "latest" if resume and latest_checkpoint(output_dir / "checkpoints") is not None else None
    trainer = Trainer(model, {t: data.train[t] for t in tasks}, data.val, config, resume=checkpoint,
                      progress=progress, overwrite=overwrite, loading=loading, augment=augment)
    return trainer.train()
