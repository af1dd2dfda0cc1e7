"""`pretrain(PretrainConfig)`: one self-distillation run, whatever started it (Python, ``m2dino
pretrain``, the pretrain recipe's flags). Its folder gets ``run.yaml``, which rebuilds the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..training.checkpoint import latest_checkpoint
from ..training.pretrain import PretrainConfig, PretrainTrainer
from ..training.pretrain.sources import check_output_outside, unlabeled_sources
from .config_io import apply_overrides, config_from_dict, read_yaml_mapping, write_config_yaml
from .run_config import RUN_YAML


@dataclass
class PretrainOutcome:
    backbone: Path | None   # OUTPUT/backbone.safetensors (None on processes other than the main one)
    steps_done: int
    images: int             # unlabelled images trained on


def pretrain(config: PretrainConfig, *, resume: str | None = None, overwrite: bool = False,
             progress: bool = True, allow_config_change: bool = False) -> PretrainOutcome:
    """Pretrain the backbone (``steps_done < config.steps``: stopped by a request, resumable).
    ``TeacherCollapseError`` ends a collapsed run. ``allow_config_change`` is not supported: the
    self-distillation state depends on every setting, so resume needs the same config."""
    if allow_config_change:
        raise ValueError("--allow-config-change: pretraining resumes only with the checkpoint's own config")
    if config.threads:
        torch.set_num_threads(config.threads)
    output_dir = Path(config.output_dir)
    check_output_outside(output_dir, config.data)
    if resume == "latest" and latest_checkpoint(output_dir / "checkpoints") is None:
        print(f"--resume latest: no checkpoint in {output_dir / 'checkpoints'}, starting this run from scratch")
        resume = None
    source = unlabeled_sources(config.data)
    if config.held_out:
        source = source.without(unlabeled_sources(config.held_out).sources)
    trainer = PretrainTrainer(source, config, resume=resume, overwrite=overwrite, progress=progress)
    write_config_yaml(config, config.output_dir, RUN_YAML)
    exported = trainer.train()
    return PretrainOutcome(exported, trainer.counters["step"], len(source))


def read_pretrain_yaml(path: str | Path, overrides: list[str] = ()) -> PretrainConfig:
    """A YAML pretraining config (e.g. a run's own ``run.yaml``), with ``key=value`` overrides applied."""
    return config_from_dict(PretrainConfig, apply_overrides(read_yaml_mapping(path), overrides), str(path))
