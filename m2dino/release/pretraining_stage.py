"""The pretraining stage of a release (model or backbone): resumed from the latest checkpoint in its
output folder whenever there is one, so a long pretraining runs in parts and a finished one is only
exported again. ``--overwrite`` replaces release and training folders, never a pretraining: hours of
it are not thrown away by a flag meant for the release folder; delete the folder to start it over."""

from __future__ import annotations

from pathlib import Path

from ..recipes.pretraining import PretrainOutcome, pretrain
from ..training.checkpoint import latest_checkpoint
from ..training.pretrain.pretrain_config import PretrainConfig


def finished_pretraining(config: PretrainConfig, progress: bool = True) -> PretrainOutcome:
    """The pretraining of ``config`` run to its last step (resumed where it has a checkpoint); a run
    that stops early (a stop request) is an error saying how to continue."""
    resume = "latest" if latest_checkpoint(Path(config.output_dir) / "checkpoints") is not None else None
    outcome = pretrain(config, resume=resume, progress=progress)
    if outcome.backbone is None or outcome.steps_done < config.steps:
        raise RuntimeError(f"pretraining stopped at step {outcome.steps_done} of {config.steps}: run the release "
                           "again to resume it")
    return outcome
