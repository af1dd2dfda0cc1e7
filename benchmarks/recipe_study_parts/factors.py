"""The recipe study's baseline and factors.

The baseline is study v2's unified MoE model at 100 % of the labels (`aggregation.md`): ``mini``
backbone from random init, 128 px, MoE in blocks 2-3 (4 experts, top-1, task routing), batch 16,
10,000 steps, tasks drawn uniformly, fp32. A factor is a set of ``--set``-style overrides of that run
config (the same keys a user writes in a YAML or on ``m2dino train --set``), compared, paired by
seed, with the cell named by ``against`` (the baseline unless the factor needs another reference,
such as a larger backbone that only fits the wall time in bf16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

STUDY_TASKS = ["fetal_head", "fetal_plane_cls", "head_symphysis_multi", "breast_lesion", "breast_3cls",
               "thyroid_nodule", "thyroid_nodule_det", "lung_disease_3cls", "ovary_tumor", "nerve_vessel_seg"]
BASELINE_STEPS = 10_000


def baseline_config(root: str, tasks: list[str], steps: int, cache_dir: str | None) -> dict:
    """The baseline run config (a `RunConfig.from_dict` mapping) on a `build-public` root."""
    return {
        "recipe": "unified",
        "data": {"sources": [f"{root}/train"], "val": f"{root}/val", "tasks": list(tasks), "cache_dir": cache_dir,
                 "num_workers": 0},
        "model": {"backbone": "mini", "image_size": 128, "moe_blocks": [2, 3], "num_experts": 4, "top_k": 1,
                  "decoder_features": 32},
        "train": {"steps": steps, "batch_size": 16, "lr": 2e-3, "backbone_lr": 1e-3, "alpha": 0.0,
                  "warmup_steps": max(1, round(0.05 * steps)), "eval_every": steps, "mixed_precision": "no",
                  "checkpoint_every": max(1, steps // 10)},
        "threads": 1,
    }


# What the study sets itself in every cell, so a preset's own values are left out when it is a factor.
STUDY_OWNED_KEYS = ("recipe", "data.tasks", "train.steps", "train.warmup_steps", "train.eval_every",
                    "train.checkpoint_every")


def preset_overrides(name: str) -> dict:
    """A shipped preset (`m2dino train --preset NAME`) as dotted overrides of the baseline, less the keys the
    study owns: the tasks and the length (``--steps`` scales the preset as it scales every cell)."""
    from m2dino.recipes import get_preset

    flat: dict = {}

    def walk(mapping: dict, prefix: str) -> None:
        for key, value in mapping.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[prefix + key] = value

    walk(get_preset(name).run, "")
    return {key: value for key, value in flat.items() if key not in STUDY_OWNED_KEYS}


@dataclass(frozen=True)
class Factor:
    """One change to the baseline: ``overrides`` (dotted key -> value), read against ``against``."""

    name: str
    question: str
    overrides: dict = field(default_factory=dict)
    against: str = "baseline"
    steps_scale: float = 1.0  # the length factor: this many times the study's step budget

    @property
    def needs_us_backbone(self) -> bool:
        """Whether an override names the study's ``--us-backbone`` file."""
        return "{us_backbone}" in json.dumps(self.overrides)


# The combined recipe, read once from the shipped preset file: two factors run it, at two lengths.
COMBINED = preset_overrides("public-mini")

FACTORS = {f.name: f for f in [
    Factor("baseline", "study v2's unified MoE model at 100 % (the reference)"),
    # Only where the CPU computes bf16 natively (AMX / AVX512-BF16); elsewhere bf16 autocast is
    # emulated and many times slower than fp32 (benchmarks/feed.py measures the ratio).
    Factor("bf16", "bf16 autocast: faster, and no accuracy lost?",
           {"train.mixed_precision": "bf16"}),
    Factor("size192", "input 192 px instead of 128", {"model.image_size": 192}),
    Factor("size224", "input 224 px instead of 128", {"model.image_size": 224}),
    # Equal wall time, not equal steps: on this CPU (fp32; bf16 is emulated) a training step of `S` at
    # 128 px, batch 16, one thread costs about 9.3x one of `mini`, so S gets 0.11 of the steps. The
    # cells' own train_seconds in the report show how equal the two wall times came out.
    Factor("backbone_s", "backbone S instead of mini, at the same wall time (0.11 of the steps)",
           {"model.backbone": "S"}, steps_scale=0.11),
    Factor("spatial_prior", "a convolutional spatial-prior branch feeding the decoders",
           {"model.spatial_prior": True}),
    Factor("balance_loss", "class-balanced loss for the classification tasks",
           {"train.class_balance": "loss"}),
    Factor("balance_sampling", "class-balanced sampling for the classification tasks",
           {"train.class_balance": "sampling"}),
    Factor("label_smoothing", "label smoothing 0.1",
           {"train.label_smoothing": 0.1}),
    Factor("aug_strong", "augmentation twice as strong (rotation, scale, gain, gamma, speckle)",
           {"data.augment.strength": 2.0}),
    Factor("aug_trivial", "TrivialAugment: one natural-image op per image (Müller & Hutter 2021)",
           {"data.augment.policy": "trivial"}),
    Factor("aug_ultrasound", "ultrasound-specific ops: depth attenuation, shadow, haze, speckle reduction",
           {"data.augment.policy": "ultrasound"}),
    # The zoo's self-supervised backbone (m2dino-mini-us-ccby): pretrained on the train split of the four
    # CC BY datasets and CC0/CC BY muscle scans only, the study root's val and test images held out.
    Factor("us_pretrained", "the ultrasound-pretrained backbone as the start instead of random init",
           {"model.pretrained": "m2dino-mini-us-ccby"}),
    # Factor 5 run far longer: the pretrain recipe on every public training image (the root's train split)
    # and the muscle scans, 2,400 steps warm-started from the zoo backbone above (4,000 in all, 2.5x its
    # length, on all eight datasets instead of four); the file comes from --us-backbone (command:
    # recipe_study.py's docstring).
    Factor("us_pretrained_all", "the backbone pretrained 2,400 steps more, on every public training image, "
           "as the start",
           {"model.pretrained": "{us_backbone}"}),
    # At 100 % of the labels the pool is the training images themselves (every public training image
    # already has a label): CPS adds the partner network's pseudo-labels on their unlabelled views.
    # The partner's encoder is MobileNetV3-small (0.9 M parameters, mini's size): with the default
    # ResNet-18 (11 M) a step cost ~10x a baseline step on 2 CPU cores; with this one ~5x (99 min a cell).
    Factor("cps_pool", "CPS (MobileNetV3-small partner, SSL4MIS weights) with the training images as the "
           "unlabelled pool", {"semi": {"method": "cps", "partner": "mobilenetv3_small_100"},
                               "data.unlabeled": ["fmc:{root}/train"]}),
    # Factor 10: the winners of the screen together, read from the shipped preset itself.
    Factor("combined", "the combined recipe: the preset public-mini", COMBINED),
    Factor("steps_half", "half the steps", steps_scale=0.5),
    Factor("steps_x2", "twice the steps", steps_scale=2.0),
    Factor("steps_x4", "four times the steps", steps_scale=4.0),
    # Whether the combined recipe's gain holds where length has taken the baseline.
    Factor("combined_x4", "the preset public-mini at four times the steps", COMBINED,
           against="steps_x4", steps_scale=4.0),
]}


def cell_config(factor: Factor, root: str, tasks: list[str], steps: int, seed: int, cache_dir: str | None,
                output_dir: str, us_backbone: str | None = None) -> dict:
    """The run config of one cell: the baseline, the factor's overrides (``{root}`` in a path is the data
    root, ``{us_backbone}`` the study's ``--us-backbone`` file), the seed and the folder. Each input size
    gets its own resize cache under ``cache_dir``: a cache holds one geometry and refuses another."""
    places = {"{root}": root, "{us_backbone}": us_backbone}
    if us_backbone is None and factor.needs_us_backbone:
        raise ValueError(f"factor {factor.name} starts from a pretrained backbone file: give it with --us-backbone "
                         "(the backbone.safetensors that the pretraining command in recipe_study.py writes)")
    factor_steps = max(1, round(steps * factor.steps_scale))
    config = baseline_config(root, tasks, factor_steps, cache_dir)
    config["train"]["seed"] = seed
    config["output_dir"] = output_dir
    for key, value in factor.overrides.items():
        *sections, name = key.split(".")
        target = config
        for section in sections:
            target = target.setdefault(section, {})
        target[name] = _filled(value, places)
    if cache_dir is not None:
        config["data"]["cache_dir"] = f"{cache_dir}/{config['model']['image_size']}px"
    return config


def _filled(value, places: dict[str, str | None]):
    if isinstance(value, str):
        for place, path in places.items():
            value = value.replace(place, path) if path is not None else value
        return value
    return [_filled(v, places) for v in value] if isinstance(value, list) else value
