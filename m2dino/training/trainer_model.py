"""The model as training needs it (targets fitted, training recorded, backbone frozen or LoRA-wrapped)
and as a run saves it (LoRA merged)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch import nn

from ..data.collection import as_collection
from ..models import M2DINO
from ..models.heads.classification import ClassificationHead
from ..models.losses import class_balanced_weights
from .lora import apply_lora, freeze_backbone, merge_lora
from .train_config import TrainConfig


def prepare_model(core: M2DINO, config: TrainConfig, train_samples: dict[str, Sequence]) -> nn.Module:
    """The module to train: ``core`` itself, or its LoRA wrapper. Heads that standardise their targets
    (a measurement head) fit them here, and the training settings go into the model's config."""
    for task, samples in train_samples.items():
        head = core.heads[task]
        if head.fits_training_targets:  # e.g. a measurement head standardises its targets
            head.fit_targets(as_collection(samples).labels())  # labels only: no image decoded
    counted = class_labels(core, train_samples) if config.class_balance == "loss" else {}
    for task in train_samples:
        if isinstance(core.heads[task], ClassificationHead):  # set every time: a reused model drops old options
            weights = None if task not in counted else class_balanced_weights(
                np.bincount(counted[task], minlength=core.task_specs[task].num_classes), config.class_balance_beta)
            core.heads[task].set_loss_options(weights, config.label_smoothing)
    core.config.training = {"lora_rank": config.lora_rank, "freeze_backbone": config.freeze_backbone,
                            "steps": config.steps, "alpha": config.alpha, "loss_weighting": config.loss_weighting,
                            "class_balance": config.class_balance, "class_balance_beta": config.class_balance_beta,
                            "label_smoothing": config.label_smoothing,
                            "tasks": sorted(train_samples)}
    if config.freeze_backbone:
        freeze_backbone(core)
    return apply_lora(core, config.lora_rank, config.lora_alpha) if config.lora_rank else core


def class_labels(core: M2DINO, train_samples: dict[str, Sequence]) -> dict[str, list[int]]:
    """Each classification task's training classes, in sample order, from the index (no image decoded
    where the index knows the label): what class-balanced loss and sampling count."""
    return {task: [int(label) for label in as_collection(samples).labels()]
            for task, samples in train_samples.items() if isinstance(core.heads[task], ClassificationHead)}


def exportable_model(model: nn.Module, core: M2DINO, config: TrainConfig) -> M2DINO:
    """The plain M2DINO (LoRA merged into a copy; training continues on the original)."""
    if config.lora_rank:
        return merge_lora(copy.deepcopy(model))
    return core


def gather_exportable_model(accelerator: Accelerator, module: nn.Module, core: M2DINO,
                            config: TrainConfig) -> M2DINO | None:
    """Under FSDP: the trained model whole, as `exportable_model` gives it, in a new M2DINO on the main
    process (None on the others). Every process must call this: each sends its shards. Elsewhere None,
    without a collective: every process holds the whole model (``core``) already.

    ``module`` is the prepared `LossModule`; its ``model.`` entries are the model (LoRA-wrapped with
    ``config.lora_rank``, as `prepare_model` made it)."""
    if accelerator.distributed_type != DistributedType.FSDP:
        return None
    state = accelerator.get_state_dict(module)  # full, on the main process's CPU; empty elsewhere
    if not accelerator.is_main_process:
        return None
    whole = M2DINO(core.config)
    model = apply_lora(whole, config.lora_rank, config.lora_alpha) if config.lora_rank else whole
    model.load_state_dict({key.removeprefix("model."): value for key, value in state.items()
                           if key.startswith("model.")})
    return merge_lora(model).to(accelerator.device)
