"""Training runs from typed configs, and the recipes that start them from the command line.

    from m2dino.recipes import RunConfig, train
    train(RunConfig(recipe="grouped", output_dir="runs/grouped"))

`RunConfig` (with `DataSettings`, `ModelSettings`, `TrainSettings`, `SemiConfig`) describes a training
run and `train` runs it; `PretrainConfig` and `pretrain` do the same for self-supervised pretraining.
`build_model`, `train_config`, `plan_groups` and `task_rows` are the pieces `train` is made of, for
studies that drive the engine themselves (benchmarks/aggregation.py).
``m2dino train run.yaml --set train.steps=500`` and ``m2dino pretrain`` start them from YAML; the
recipes (`unified`, `grouped`, `task_specific`, `semi_supervised`, `pretrain`, each with
``main(argv)``) from flags: ``python -m m2dino.recipes.unified`` or ``accelerate launch -m
m2dino.recipes.unified``. Once the `pretrain` recipe module is imported, Python binds the package's
``pretrain`` attribute to that module; code inside m2dino therefore imports the function from
`m2dino.recipes.pretraining`, which always holds it.
"""

from ..training.pretrain.pretrain_config import PretrainConfig
from ..training.semi.semi_config import SemiConfig
from ..training.train_config import TrainSettings
from .building import build_model, model_config, train_config
from .presets import Preset, get_preset, preset_names
from .pretraining import PretrainOutcome, pretrain, read_pretrain_yaml
from .run_config import DataSettings, ModelSettings, RunConfig
from .runner import RunOutcome, plan_groups, train
from .summary import RunSummary, markdown_table, task_rows

__all__ = ["DataSettings", "ModelSettings", "Preset", "PretrainConfig", "PretrainOutcome", "RunConfig", "RunOutcome",
           "RunSummary", "SemiConfig", "TrainSettings", "build_model", "get_preset", "markdown_table", "model_config",
           "plan_groups", "preset_names", "pretrain", "read_pretrain_yaml", "task_rows", "train", "train_config"]
