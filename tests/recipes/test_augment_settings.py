"""A run config's augmentation: ``data.augment`` (policy, strength, ranges) and ``data.augment_on``,
from ``--set`` through run.yaml to the trainer's loader."""

import pytest
import yaml

from m2dino.cli.main import main as m2dino
from m2dino.data.augment_policies import TrivialAugment
from m2dino.data.transforms import AugmentConfig
from m2dino.recipes import DataSettings, ModelSettings, RunConfig, TrainSettings, train
from m2dino.recipes.config_io import apply_overrides

STUDY_KEYS = ["data.augment.policy=trivial", "data.augment.strength=1.5", "data.augment.scale=[0.8, 1.25]"]


def test_augment_settings_from_set_survive_run_yaml_exactly(tmp_path, capsys):
    config = RunConfig.from_dict(apply_overrides({}, STUDY_KEYS))
    assert config.data.augment == AugmentConfig(policy="trivial", strength=1.5, scale=(0.8, 1.25))
    assert config.data.augment_on == "device"
    config.write(tmp_path)
    assert RunConfig.read(tmp_path / "run.yaml") == config
    assert m2dino(["train", *[arg for key in STUDY_KEYS for arg in ("--set", key)], "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["augment"]["policy"] == "trivial" and RunConfig.from_dict(printed) == config


@pytest.mark.parametrize("overrides, message", [
    (["data.augment.policy=strong"], "augment.policy='strong'; expected one of default, trivial, ultrasound"),
    (["data.augment.strength=-1"], "augment.strength must be >= 0, got -1.0"),
    (["data.augment.polcy=trivial"], "unknown field data.augment.polcy; expected one of data.augment.policy, "),
    (["data.augment_on=gpu"], "data.augment_on='gpu'; expected one of ('worker', 'device')"),
    (["data.augment_on=worker", "data.augment.policy=ultrasound"],
     "data.augment.policy='ultrasound' runs on the training device only; set data.augment_on=device"),
])
def test_bad_augment_settings_are_one_line(overrides, message, capsys):
    assert m2dino(["train", *[arg for key in overrides for arg in ("--set", key)], "--print-config"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"m2dino train: error: --set: {message}") and error.count("\n") == 1


def test_the_trainer_augments_with_the_run_configs_policy(tmp_path):
    config = RunConfig(output_dir=str(tmp_path / "run"),
                       data=DataSettings(tasks=["fetal_head", "breast_2cls"], synthetic_per_task=4, num_workers=0,
                                         augment=AugmentConfig(policy="trivial", strength=2.0)),
                       model=ModelSettings(backbone="test", image_size=32, decoder_features=8),
                       train=TrainSettings(steps=2, batch_size=2, eval_every=2, warmup_steps=1))
    seen = {}

    def inspect(trainer, step) -> None:
        dataset = trainer.loader.dataloader.dataset
        seen.update({task: transform.steps[0].steps[-1] for task, transform in dataset.transforms.items()},
                    on_device=dataset.on_device)

    outcome = train(config, progress=False, step_callback=inspect)
    assert outcome.runs and seen["on_device"]
    assert all(isinstance(seen[task], TrivialAugment) and seen[task].strength == 2.0
               for task in ("fetal_head", "breast_2cls"))
    assert RunConfig.read(tmp_path / "run" / "run.yaml").data.augment.policy == "trivial"


def test_the_classification_refit_stage_augments_like_the_first(tmp_path):
    """--two-stage-steps trains the heads again with the run's augmentation (its checkpoint records it)."""
    import json

    from m2dino.training.checkpoint import STATE_NAME, latest_checkpoint

    config = RunConfig(output_dir=str(tmp_path / "run"), two_stage_steps=1,
                       data=DataSettings(tasks=["fetal_head", "breast_2cls"], synthetic_per_task=4, num_workers=0,
                                         augment=AugmentConfig(policy="trivial", strength=2.0)),
                       model=ModelSettings(backbone="test", image_size=32, decoder_features=8),
                       train=TrainSettings(steps=1, batch_size=2, eval_every=1, warmup_steps=0))
    train(config, progress=False)
    state = json.loads((latest_checkpoint(tmp_path / "run" / "stage2" / "checkpoints") / STATE_NAME).read_text())
    assert (state["configuration"]["augment"]["policy"], state["configuration"]["augment"]["strength"]) == (
        "trivial", 2.0)
