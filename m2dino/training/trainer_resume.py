"""Resuming a training run: what must match the checkpoint, and putting changed settings into effect.

``resume`` refuses a different training, model or augmentation configuration unless ``allow_config_change=True``,
in which case the saved config and the model card list each change and the step it took effect.
"""

from __future__ import annotations

import dataclasses
import json

from ..data.transforms import AugmentConfig
from ..models import M2DINO, M2DINOConfig
from .train_config import TrainConfig

# Settings that do not change what is trained: resume may change them without being told.
FREE_ON_RESUME = ("output_dir", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "compile")


def run_configuration(config: TrainConfig, core: M2DINO, augment: AugmentConfig) -> dict:
    """What resume compares: the training config, the model's architecture (not its training record)
    and the augmentation (another policy or strength trains another model)."""
    model = {k: v for k, v in json.loads(json.dumps(core.config.to_dict())).items() if k != "training"}
    return {"train": json.loads(json.dumps(config.to_dict())), "model": model,
            "augment": json.loads(json.dumps(dataclasses.asdict(augment), default=list))}


def config_differences(saved: dict, now: dict) -> list[dict]:
    """``[{"field": "train.lr", "checkpoint": 0.002, "now": 0.001}, ...]`` (settings in FREE_ON_RESUME skipped).

    A setting the checkpoint does not record was added to m2dino after it was written: it trained
    with that setting's default, so only a value other than the default is a change."""
    changes = []
    for part, config_class in (("train", TrainConfig), ("model", M2DINOConfig), ("augment", AugmentConfig)):
        before, after = {**field_defaults(config_class), **saved.get(part, {})}, now[part]
        for key in sorted(set(saved.get(part, {})) | set(after)):
            if part == "train" and key in FREE_ON_RESUME:
                continue
            if before.get(key) != after.get(key):
                changes.append({"field": f"{part}.{key}", "checkpoint": before.get(key), "now": after.get(key)})
    return changes


def field_defaults(config_class: type) -> dict:
    """A config dataclass's defaults as its ``to_dict`` writes them (JSON types)."""
    defaults = {}
    for f in dataclasses.fields(config_class):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    return json.loads(json.dumps(defaults, default=list))


def describe_changes(changes: list[dict]) -> str:
    return "; ".join(f"{c['field']}: {c['checkpoint']!r} there, {c['now']!r} now" for c in changes)


def restore_learning_rates(optimizer, scheduler, fresh: list[tuple[float, float]]) -> None:
    """The loaded optimizer carries the checkpoint's learning rates: put this run's back (``fresh``:
    each group's lr and weight decay as built), so an allowed change takes effect and the recorded
    config tells the truth. ``scheduler`` is accelerate's wrapper around the LambdaLR."""
    inner = scheduler.scheduler
    for group, (lr, weight_decay) in zip(optimizer.param_groups, fresh):
        group["initial_lr"], group["weight_decay"] = lr, weight_decay
    inner.base_lrs = [lr for lr, _ in fresh]
    for group, lr, factor in zip(optimizer.param_groups, inner.base_lrs, inner.lr_lambdas):
        group["lr"] = lr * factor(inner.last_epoch)
