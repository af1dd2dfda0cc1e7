"""A run owns its output folder and its checkpoints: no mixing with an older run, no silent
change of settings on resume, `latest` always usable, SIGTERM reported as a failure to schedulers."""

import json
import os
import shutil
import signal

import pytest
import torch

from m2dino import M2DINO, M2DINOConfig
from m2dino.recipes import flags, runner
from m2dino.training import TrainConfig, Trainer
from m2dino.training.checkpoint import STATE_NAME, CheckpointError, latest_checkpoint

from .fake_data import fake_data

TASKS = ["fetal_head", "fetal_plane_cls"]


def tiny_model(backbone="test", image_size=32, seed=0):
    torch.manual_seed(seed)
    return M2DINO(M2DINOConfig(backbone=backbone, tasks=TASKS, moe_blocks=(2, 3), num_experts=2, top_k=1,
                               decoder_features=8, image_size=image_size))


def config(path, **kw):
    defaults = {"output_dir": str(path), "steps": 4, "batch_size": 2, "eval_every": 1000, "warmup_steps": 1}
    return TrainConfig(**{**defaults, **kw})


def stop_at(step):
    def callback(trainer, current):
        if current == step:
            trainer.request_stop()
    return callback


def test_a_new_run_refuses_a_non_empty_output_folder_and_overwrite_replaces_the_old_run(tmp_path):
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    Trainer(tiny_model(), train, val, config(tmp_path, checkpoint_every=2), progress=False).train()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "example.png").write_bytes(b"the old run's card picture")
    with pytest.raises(FileExistsError, match=f"output folder {tmp_path} is not empty .*--resume latest.*--overwrite"):
        Trainer(tiny_model(), train, val, config(tmp_path), progress=False)
    Trainer(tiny_model(), train, val, config(tmp_path, steps=2), overwrite=True, progress=False).train()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*")) == ["step_00000002"]
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only a run's own outputs are removed
    assert not (tmp_path / "example.png").exists()         # the old card's picture is one of them


def test_retention_deletes_only_this_runs_checkpoints_and_latest_stays_loadable(tmp_path):
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    checkpoints = tmp_path / "checkpoints"

    def plant_another_runs_checkpoint(trainer, step):
        if step == 2:  # a folder of another run with a higher step number (the original failure)
            foreign = checkpoints / "step_00000350"
            shutil.copytree(checkpoints / "step_00000002", foreign)
            state = json.loads((foreign / STATE_NAME).read_text())
            (foreign / STATE_NAME).write_text(json.dumps({**state, "run_id": "another run"}))

    Trainer(tiny_model(), train, val, config(tmp_path, steps=6, checkpoint_every=2, keep_checkpoints=1),
            step_callback=plant_another_runs_checkpoint, progress=False).train()
    assert sorted(p.name for p in checkpoints.glob("step_*")) == ["step_00000006", "step_00000350"]
    assert latest_checkpoint(checkpoints).name == "step_00000006"
    resumed = Trainer(tiny_model(), train, val, config(tmp_path, steps=8), resume="latest", progress=False,
                      allow_config_change=True)
    assert resumed.state.step == 6


def test_latest_never_names_an_incomplete_checkpoint(tmp_path):
    (tmp_path / "step_00000004").mkdir(parents=True)
    (tmp_path / "latest").write_text("step_00000004")
    with pytest.raises(CheckpointError, match="names step_00000004, which is not a complete checkpoint"):
        latest_checkpoint(tmp_path)


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A run stopped at step 2 of 4 (lr 1e-3, image size 32, backbone 'test')."""
    path = tmp_path_factory.mktemp("stopped")
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    Trainer(tiny_model(), train, val, config(path), step_callback=stop_at(2), progress=False).train()
    return path, train, val


def copy_run(stopped_run, tmp_path):
    path, train, val = stopped_run
    shutil.copytree(path, tmp_path / "run")
    return tmp_path / "run", train, val


def test_resume_with_other_settings_stops_with_the_list_of_differences(stopped_run, tmp_path):
    path, train, val = copy_run(stopped_run, tmp_path)
    with pytest.raises(CheckpointError, match=r"another configuration \(train.lr: 0.001 there, 0.002 now; "
                                              r"model.image_size: \[32, 32\] there, \[64, 64\] now\).*"
                                              "--allow-config-change"):
        Trainer(tiny_model(image_size=64), train, val, config(path, lr=2e-3), resume="latest", progress=False)


def test_resume_with_another_augmentation_is_a_change_too(stopped_run, tmp_path):
    from m2dino.data.transforms import AugmentConfig

    path, train, val = copy_run(stopped_run, tmp_path)
    stronger = AugmentConfig(policy="trivial", strength=2.0)
    with pytest.raises(CheckpointError, match=r"augment.policy: 'default' there, 'trivial' now; "
                                              r"augment.strength: 1.0 there, 2.0 now"):
        Trainer(tiny_model(), train, val, config(path), resume="latest", progress=False, augment=stronger)
    resumed = Trainer(tiny_model(), train, val, config(path), resume="latest", progress=False,
                      augment=AugmentConfig())  # the same augmentation, given explicitly: no change
    assert resumed.state.step == 2 and resumed.config_changes == []


def test_an_allowed_change_takes_effect_and_is_recorded(stopped_run, tmp_path):
    path, train, val = copy_run(stopped_run, tmp_path)
    trainer = Trainer(tiny_model(), train, val, config(path, lr=2e-3), resume="latest", progress=False,
                      allow_config_change=True)
    head_group = next(g for g in trainer.optimizer.param_groups if g["initial_lr"] != trainer.config.backbone_lr)
    assert head_group["initial_lr"] == 2e-3  # not the checkpoint's 1e-3
    trainer.train()
    recorded = M2DINO.from_pretrained(path).config.training["config_changes"]
    assert recorded == [{"field": "train.lr", "checkpoint": 0.001, "now": 0.002, "step": 2}]
    card = (path / "README.md").read_text()
    assert '"config_changes"' in card and '"lr": 0.002' in card


def test_resume_with_another_backbone_is_one_clear_line(stopped_run, tmp_path):
    path, train, val = copy_run(stopped_run, tmp_path)
    with pytest.raises(CheckpointError,
                       match="model.backbone: 'vit_test_patch16_dinov3' there, 'vit_mini_patch16_dinov3' now"):
        Trainer(tiny_model("mini"), train, val, config(path), resume="latest", progress=False)
    with pytest.raises(CheckpointError, match=r"holds a different model \(\d+ tensors of another shape") as err:
        Trainer(tiny_model("mini"), train, val, config(path), resume="latest", progress=False,
                allow_config_change=True)
    assert "\n" not in str(err.value)


def test_resume_from_a_misspelt_or_old_checkpoint_is_one_clear_line(stopped_run, tmp_path):
    path, train, val = copy_run(stopped_run, tmp_path)
    with pytest.raises(CheckpointError, match="--resume lastest: no such checkpoint folder; pass 'latest'"):
        Trainer(tiny_model(), train, val, config(path), resume="lastest", progress=False)
    old = tmp_path / "old"
    old.mkdir()
    (old / "random_states_0.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(CheckpointError, match="older m2dino \\(pickle files\\); it is not loaded"):
        Trainer(tiny_model(), train, val, config(path), resume=old, progress=False)


def test_sigterm_exits_with_status_143_after_checkpointing(tmp_path, monkeypatch):
    class TerminatedAtStep2(Trainer):
        def __init__(self, *args, **kw):
            def terminate(trainer, step):
                if step == 2:
                    os.kill(os.getpid(), signal.SIGTERM)
            super().__init__(*args, **{**kw, "step_callback": terminate})

    monkeypatch.setattr(runner, "Trainer", TerminatedAtStep2)
    from m2dino.recipes.unified import main
    argv = ["--backbone", "test", "--image-size", "32", "--batch-size", "2", "--steps", "5", "--decoder-features", "8",
            "--synthetic-per-task", "4", "--tasks", "fetal_head", "--no-progress", "--output-dir", str(tmp_path)]
    assert flags.cli_main(main, argv) == flags.EXIT_INTERRUPTED == 143
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000002"
