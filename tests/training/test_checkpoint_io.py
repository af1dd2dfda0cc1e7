"""Checkpoints hold no pickle, and a full or read-only disk is one clear error that loses nothing."""

import errno
import os
import pickle
import shutil

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from m2dino import M2DINO
from m2dino.recipes import flags, run_data
from m2dino.recipes.unified import main as unified
from m2dino.training import Trainer, output_check
from m2dino.training import checkpoint as checkpoint_module
from m2dino.training.checkpoint import write_atomically

from .fake_data import fake_data
from .test_run_folder import TASKS, config, stop_at, tiny_model

TINY = ["--backbone", "test", "--image-size", "32", "--batch-size", "2", "--steps", "2", "--decoder-features", "8",
        "--synthetic-per-task", "4", "--tasks", "fetal_head", "--no-progress"]


def forbid_unpickling(monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("a checkpoint was unpickled")
    for module, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(module, name, refuse)


def test_a_checkpoint_is_safetensors_and_json_only_and_resumes_without_unpickling(tmp_path, monkeypatch):
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    Trainer(tiny_model(), train, val, config(tmp_path, loss_weighting="uncertainty"), step_callback=stop_at(2),
            progress=False).train()
    folder = tmp_path / "checkpoints" / "step_00000002"
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "optimizer.safetensors",
                                                        "rng_0.json", "rng_0.safetensors", "training_state.json"]
    forbid_unpickling(monkeypatch)
    trainer = Trainer(tiny_model(seed=5), train, val, config(tmp_path, loss_weighting="uncertainty"),
                      resume="latest", progress=False)
    assert trainer.state.step == 2 and trainer.sampler.state_dict()["step"] == 2
    assert trainer.optimizer.state_dict()["state"], "optimizer moments were not restored"
    assert trainer.train().steps_done == 4


def disk_full(*args, **kw):
    raise OSError(errno.ENOSPC, "No space left on device")


def safetensors_disk_full(*args, **kw):
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def test_a_full_disk_during_a_checkpoint_is_one_line_removes_the_tmp_and_keeps_the_final_model(tmp_path, monkeypatch):
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    monkeypatch.setattr(checkpoint_module, "save_file", safetensors_disk_full)
    with pytest.raises(OSError, match=r"no space left to write .*step_00000004 "
                                      r"\(about [1-9][\d.]* MB needed, [\d.]+ MB free\); "
                                      "the partial folder was removed") as err:
        Trainer(tiny_model(), train, val, config(tmp_path), progress=False).train()
    assert "\n" not in str(err.value)
    assert not list((tmp_path / "checkpoints").glob(".*"))
    assert M2DINO.from_pretrained(tmp_path).task_ids == TASKS  # the final model was saved before the checkpoint


def test_a_failed_model_save_names_the_folder_and_removes_the_tmp(tmp_path):
    def torch_write_failure(tmp):
        (tmp / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0\nmore lines")

    with pytest.raises(OSError, match=f"cannot write {tmp_path / 'best'}: \\[enforce fail"):
        write_atomically(tmp_path / "best", torch_write_failure)
    with pytest.raises(OSError, match="no space left to write"):
        write_atomically(tmp_path / "best", disk_full)
    assert list(tmp_path.iterdir()) == []


def test_too_little_free_space_stops_the_recipe_before_any_data_is_loaded(tmp_path, monkeypatch):
    def no_data(*args, **kw):
        raise AssertionError("data was loaded")
    monkeypatch.setattr(run_data, "load_training_data", no_data)
    monkeypatch.setattr(output_check.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9, 2**20))
    with pytest.raises(OSError, match=f"not enough free space for the run in {tmp_path / 'run'}: about \\d+ MB needed "
                                      r"\(model, best model and checkpoints\), 1 MB free"):
        unified(TINY + ["--output-dir", str(tmp_path / "run")])


def test_an_unwritable_output_folder_stops_the_recipe_before_any_data_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(run_data, "load_training_data", lambda *a, **k: pytest.fail("data was loaded"))
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores permission bits: simulate the refusal instead
        def refuse(*args, **kw):
            raise PermissionError(errno.EACCES, "Permission denied")
        monkeypatch.setattr(output_check.tempfile, "TemporaryFile", refuse)
    with pytest.raises(OSError, match=f"output folder {folder / 'run'} is not writable: Permission denied"):
        unified(TINY + ["--output-dir", str(folder / "run")])
    folder.chmod(0o755)


def test_a_recipe_reports_user_errors_as_one_line_and_status_2(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("x")
    assert flags.cli_main(unified, TINY + ["--output-dir", str(tmp_path)]) == flags.EXIT_USER_ERROR == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: output folder {tmp_path} is not empty") and err.count("\n") == 1


def test_the_final_model_is_saved_before_best_and_the_final_checkpoint(tmp_path, monkeypatch):
    train, val = fake_data(TASKS, n_train=4, n_val=2)

    def best_fails(self, directory, metrics, gathered):
        raise OSError(errno.ENOSPC, f"no space left to write {directory}")

    monkeypatch.setattr(Trainer, "_save_model", best_fails)
    with pytest.raises(OSError, match="no space left to write .*best"):
        Trainer(tiny_model(), train, val, config(tmp_path), progress=False).train()
    assert M2DINO.from_pretrained(tmp_path).task_ids == TASKS


def test_sharded_runs_store_model_and_optimizer_through_accelerate_and_resume(tmp_path, monkeypatch):
    """FSDP/DeepSpeed cannot run on this CPU machine; the storage path they take is exercised by
    declaring this run sharded (accelerate's save_state/load_state work the same unsharded)."""
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    Trainer(tiny_model(), train, val, config(tmp_path / "plain"), step_callback=stop_at(2), progress=False).train()
    monkeypatch.setattr(checkpoint_module, "_is_sharded", lambda accelerator: True)
    with pytest.raises(checkpoint_module.CheckpointError,
                       match="written by a non-sharded run; resume it with the same"):
        Trainer(tiny_model(), train, val, config(tmp_path / "plain"), resume="latest", progress=False)
    Trainer(tiny_model(), train, val, config(tmp_path / "sharded"), step_callback=stop_at(2), progress=False).train()
    folder = tmp_path / "sharded" / "checkpoints" / "step_00000002"
    assert (folder / "optimizer.bin").is_file() and (folder / "training_state.json").is_file()
    resumed = Trainer(tiny_model(seed=3), train, val, config(tmp_path / "sharded"), resume="latest", progress=False)
    assert resumed.state.step == 2 and resumed.sampler.state_dict()["step"] == 2
    saved = load_file(folder / "model.safetensors")
    loaded = resumed.accelerator.unwrap_model(resumed.module).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items()) and saved.keys() == loaded.keys()


def test_a_full_disk_while_saving_the_final_model_leaves_no_partial_file(tmp_path, monkeypatch):
    train, val = fake_data(TASKS, n_train=4, n_val=2)

    def partial_save(self, directory, card_extra=None):
        (directory / "model.safetensors").write_bytes(b"half a file")
        safetensors_disk_full()

    monkeypatch.setattr(M2DINO, "save_pretrained", partial_save)
    with pytest.raises(OSError, match=f"no space left to write {tmp_path} "):
        Trainer(tiny_model(), train, val, config(tmp_path), progress=False).train()
    assert not (tmp_path / "model.safetensors").exists() and not list(tmp_path.glob(".*"))
