"""Issue 27, training runs, caches and data integrity: a run folder is locked by the process that
writes it; a cache entry changed on disk is caught; a repeated CSV row is reported and refused; a
re-saved held-out image is still held out; a pretraining output folder never lies inside its data."""

import fcntl
import os
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino.cli.main import main
from m2dino.data import UnlabeledSource, read_fmc_index
from m2dino.data.errors import DataError
from m2dino.data.synthetic import write_synthetic
from m2dino.recipes import DataSettings, ModelSettings, RunConfig, TrainSettings, pretrain, runner
from m2dino.recipes.flags import cli_main
from m2dino.recipes.unified import main as unified_main
from m2dino.training import Trainer
from m2dino.training.pretrain import CropConfig, LossConfig, PretrainConfig
from m2dino.training.run_folder import LOCK_FILE, RunFolderInUse, hold_run_folder

from ..training.fake_data import fake_data
from ..training.test_run_folder import TASKS, config, tiny_model


# ----------------------------------------------------------------------------------- run-folder lock
def hold_like_another_run(folder, pid=12345):
    """The lock as another process holds it: its own open file description, flocked, with its pid
    written in (flock conflicts between two open() of one file, even in one process)."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a+")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(f"{pid}\n")
    handle.flush()
    return handle


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_holders_pid(tmp_path):
    holder = hold_like_another_run(tmp_path / "run")
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    with pytest.raises(RunFolderInUse, match=r"output folder .*run is in use by another run \(pid 12345\)"):
        Trainer(tiny_model(), train, val, config(tmp_path / "run"), progress=False)
    holder.close()  # the other run ends: the folder is free
    Trainer(tiny_model(), train, val, config(tmp_path / "run", steps=2), progress=False).train()
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / LOCK_FILE).exists()  # released (and removed) at the end


def test_a_resume_while_the_first_run_is_alive_is_refused(tmp_path):
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    Trainer(tiny_model(), train, val, config(tmp_path, steps=2, checkpoint_every=2), progress=False).train()
    holder = hold_like_another_run(tmp_path, pid=4242)
    with pytest.raises(RunFolderInUse, match=r"pid 4242"):
        Trainer(tiny_model(), train, val, config(tmp_path, steps=4), resume="latest", progress=False,
                allow_config_change=True)
    holder.close()
    resumed = Trainer(tiny_model(), train, val, config(tmp_path, steps=4), resume="latest", progress=False,
                      allow_config_change=True)
    assert resumed.state.step == 2


def test_a_real_second_process_is_refused_while_a_training_runs(tmp_path):
    """While a Trainer trains, another process cannot take the folder (a subprocess tries)."""
    train, val = fake_data(TASKS, n_train=4, n_val=2)
    script = ("import fcntl, sys; f = open(sys.argv[1], 'a+'); f.seek(0)\n"
              "try:\n    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB); print('free')\n"
              "except BlockingIOError:\n    print('held by', f.read().strip())\n")
    seen = []

    def probe(trainer, step):
        if step == 1:
            seen.append(subprocess.run([sys.executable, "-c", script, str(tmp_path / LOCK_FILE)],
                                       capture_output=True, text=True).stdout.strip())

    Trainer(tiny_model(), train, val, config(tmp_path, steps=2), step_callback=probe, progress=False).train()
    assert seen == [f"held by {os.getpid()}"]


def test_a_stale_lock_of_a_killed_run_is_taken_over_with_a_message(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs; its flock went with it
    (tmp_path / LOCK_FILE).write_text(f"{dead.pid}\n")
    with hold_run_folder(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert f"taking over the lock left by pid {dead.pid}, which is no longer running" in capsys.readouterr().err
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_is_released_on_an_exception_and_on_sigterm(tmp_path):
    train, val = fake_data(TASKS, n_train=4, n_val=2)

    def fail(trainer, step):
        raise RuntimeError("a bug at step 1")

    with pytest.raises(RuntimeError, match="a bug"):
        Trainer(tiny_model(), train, val, config(tmp_path / "a"), step_callback=fail, progress=False).train()
    hold_like_another_run(tmp_path / "a").close()  # free again

    def terminate(trainer, step):
        if step == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # run_session's handler: checkpoint and return

    result = Trainer(tiny_model(), train, val, config(tmp_path / "b"), step_callback=terminate, progress=False).train()
    assert result.interrupted
    hold_like_another_run(tmp_path / "b").close()


def tiny_run(output_dir, recipe="unified"):
    return RunConfig(recipe=recipe, output_dir=str(output_dir),
                     data=DataSettings(tasks=["fetal_head", "breast_2cls"], synthetic_per_task=4),
                     model=ModelSettings(backbone="test", image_size=32, decoder_features=8),
                     train=TrainSettings(batch_size=2, steps=1, eval_every=1, warmup_steps=1))


def test_a_grouped_run_locks_its_top_folder_for_the_whole_run(tmp_path):
    holder = hold_like_another_run(tmp_path / "grouped", pid=777)
    with pytest.raises(RunFolderInUse, match=r"grouped is in use by another run \(pid 777\)"):
        runner.train(tiny_run(tmp_path / "grouped", "grouped"), progress=False)
    holder.close()
    states = []

    def probe(trainer, step):  # inside the second group's trainer, the top folder is still locked
        try:
            hold_like_another_run(tmp_path / "grouped").close()
            states.append("free")
        except BlockingIOError:
            states.append("locked")

    runner.train(tiny_run(tmp_path / "grouped", "grouped"), progress=False, step_callback=probe)
    assert states == ["locked", "locked"]  # fetal, breast: two groups, two trainers
    assert not (tmp_path / "grouped" / LOCK_FILE).exists()


def test_m2dino_train_and_the_recipes_into_a_locked_folder_exit_2_with_one_line(tmp_path, capsys):
    holder = hold_like_another_run(tmp_path / "run", pid=31337)
    tiny_run(tmp_path / "run").write(tmp_path / "config")
    line = (f"output folder {tmp_path / 'run'} is in use by another run (pid 31337); wait for it to finish or stop "
            "it, or choose another --output-dir")
    assert main(["train", str(tmp_path / "config" / "run.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"m2dino train: error: {line}"]
    assert cli_main(unified_main, ["--backbone", "test", "--tasks", "fetal_head", "--synthetic-per-task", "4",
                                   "--image-size", "32", "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {line}"]
    holder.close()


def scans(folder, n=4, size=(40, 48)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(folder / f"scan_{i}.png")
    return folder


def pretrain_config(output_dir, data, steps=1):
    return PretrainConfig(output_dir=str(output_dir), data=[str(data)], backbone="test", steps=steps, batch_size=2,
                          warmup_steps=1, crops=CropConfig(global_size=32, local_size=16, local_crops=2),
                          loss=LossConfig(prototypes=32, ibot_prototypes=16, head_hidden=32, head_bottleneck=16),
                          threads=1)


def test_pretraining_into_a_locked_folder_is_refused(tmp_path):
    holder = hold_like_another_run(tmp_path / "pre", pid=2024)
    with pytest.raises(RunFolderInUse, match=r"pid 2024"):
        pretrain(pretrain_config(tmp_path / "pre", scans(tmp_path / "data")), progress=False)
    holder.close()


# ------------------------------------------------------------------------------------------ fixtures
# A cache entry changed on disk (an edited or truncated shard) is named and read from its source:
# tests/data/test_resize_cache.py.
@pytest.fixture
def fmc_root(tmp_path):
    return write_synthetic(tmp_path / "fmc", per_task=3, image_size=(40, 48), splits=("train",),
                           tasks=["fetal_plane_cls"])["train"]


# ----------------------------------------------------------------------------------- duplicate rows
def test_a_repeated_csv_row_is_reported_by_data_check_and_refused_in_training(fmc_root, capsys):
    rows = read_fmc_index(fmc_root)
    csv_file = rows[0].csv_file
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join([*lines, lines[1]]) + "\n")  # the first data row again, at the end
    first, repeated = rows[0].csv_row, rows[-1].csv_row + 1
    message = f"{csv_file}, row {repeated}: repeats row {first} (same image"
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        read_fmc_index(fmc_root)
    assert main(["data", "check", str(fmc_root)]) == 1
    assert message in capsys.readouterr().out


# ---------------------------------------------------------------------------- held out, by pixels
def test_a_re_saved_validation_image_is_caught_by_its_pixels(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "val.png", compress_level=9)
    pool = scans(tmp_path / "pool", n=3)
    Image.fromarray(pixels).save(pool / "copy.png", compress_level=1, pnginfo=None)
    Image.fromarray(pixels).save(pool / "copy.bmp")
    assert (pool / "copy.png").read_bytes() != (tmp_path / "val.png").read_bytes()
    source = UnlabeledSource.from_folder(pool)
    with pytest.raises(DataError, match=r"2 unlabelled image\(s\) are also validation/test images: .*copy.bmp "
                                        r"\(= .*val.png\); .*copy.png \(= .*val.png\)"):
        source.without([str(tmp_path / "val.png")])
    kept = source.without([str(tmp_path / "val.png")], on_overlap="exclude")
    assert sorted(os.path.basename(s) for s in kept.sources) == ["scan_0.png", "scan_1.png", "scan_2.png"]


def test_pretraining_held_out_images_are_compared_by_pixels(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    (tmp_path / "held").mkdir()
    Image.fromarray(pixels).save(tmp_path / "held" / "val.png")
    data = scans(tmp_path / "data")
    Image.fromarray(pixels).save(data / "resaved.bmp")
    held_out = replace(pretrain_config(tmp_path / "out", data), held_out=[str(tmp_path / "held")])
    with pytest.raises(DataError, match=r"resaved.bmp \(= .*val.png\)"):
        pretrain(held_out, progress=False)


# ----------------------------------------------------------------------- output inside the data
def test_pretrain_output_inside_its_data_folder_is_refused_naming_both(tmp_path):
    data = scans(tmp_path / "data")
    for output in (data / "run", data):
        with pytest.raises(DataError, match=rf"--output-dir {output} is inside --data {data}: the next run would "
                                            "read the run's own images"):
            pretrain(pretrain_config(output, data), progress=False)
    assert not (data / "run").exists()


def test_a_semi_supervised_output_inside_its_unlabeled_folder_is_refused(tmp_path):
    pool = scans(tmp_path / "pool")
    run = tiny_run(pool / "semi")
    run.data.unlabeled = [str(pool)]
    with pytest.raises(DataError, match=rf"--output-dir {pool / 'semi'} is inside --unlabeled {pool}"):
        runner.train(run, progress=False)
    assert not (pool / "semi").exists()


def test_the_checks_leave_valid_runs_alone(tmp_path):
    torch.set_num_threads(1)
    data = scans(tmp_path / "data")
    outcome = pretrain(pretrain_config(tmp_path / "out", data), progress=False)
    assert outcome.steps_done == 1 and not (tmp_path / "out" / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_two_process_launch_into_a_locked_folder_stops_on_every_process(tmp_path):
    """Only the launch's main process takes the lock; the others learn of the refusal and stop too
    (no rank is left waiting in a collective)."""
    from ..training.test_distributed import COMMAND, ENV, REPO

    holder = hold_like_another_run(tmp_path / "run", pid=8086)
    run = subprocess.run([*COMMAND, "--output-dir", str(tmp_path / "run")], capture_output=True, text=True,
                         timeout=300, cwd=REPO, env=ENV)
    holder.close()
    assert run.returncode != 0
    assert run.stderr.count(f"error: output folder {tmp_path / 'run'} is in use by another run (pid 8086)") == 2
