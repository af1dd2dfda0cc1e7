"""Training from a lazy FMC root: workers, exact resume with prefetching, and files that go bad mid-run."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from m2dino.data import DataError
from m2dino.data.loading import LoaderConfig
from m2dino.data.synthetic import write_synthetic
from m2dino.training import TrainConfig, Trainer
from m2dino.training.data_sources import load_training_data

from .test_engine import tiny_model, weights

TASKS = ["fetal_head", "fetal_plane_cls", "fetal_head_circumference"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic"), 6, (40, 48), splits=("train",), tasks=TASKS)["train"]


def _config(out: Path, steps: int = 6) -> TrainConfig:
    return TrainConfig(output_dir=str(out), steps=steps, batch_size=3, eval_every=1000, warmup_steps=2, log_every=1)


def _data(root: Path):
    return load_training_data(str(root), TASKS, image_size=32)


def test_a_root_is_loaded_lazily_and_scalar_statistics_come_from_the_index(root):
    data = _data(root)
    assert all(type(items).__name__ == "SampleCollection" for items in data.train.values())
    entries = data.train["fetal_head_circumference"].items
    assert all(e.label is not None for e in entries)  # known without decoding an image


def test_two_workers_and_a_resume_under_prefetching_match_serial_training(root, tmp_path):
    data = _data(root)
    serial = tiny_model(TASKS)
    Trainer(serial, data.train, data.val, _config(tmp_path / "a"), progress=False,
            loading=LoaderConfig(num_workers=0)).train()

    def stop_at_3(trainer, step):
        if step == 3:
            trainer.request_stop()

    parallel = LoaderConfig(num_workers=2, cache_dir=str(tmp_path / "cache"))
    first = Trainer(tiny_model(TASKS), data.train, data.val, _config(tmp_path / "b"), step_callback=stop_at_3,
                    progress=False, loading=parallel).train()
    assert first.steps_done == 3
    resumed = tiny_model(TASKS, seed=7)
    Trainer(resumed, data.train, data.val, _config(tmp_path / "b"), resume="latest", progress=False,
            loading=parallel).train()
    for key, value in weights(serial).items():
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)


def _delete_task_images(root: Path, task: str) -> list[Path]:
    files = sorted(root.rglob(f"{task}_train_*.png"))
    for file in files:
        file.unlink()
    return files


def test_a_file_that_disappears_mid_run_stops_it_with_its_name(root, tmp_path):
    copy = Path(shutil.copytree(root, tmp_path / "root"))
    data = _data(copy)

    def vandalise(trainer, step):
        if step == 1:
            _delete_task_images(copy, "fetal_plane_cls")

    with pytest.raises(DataError, match="image file not found: .*fetal_plane_cls_train_"):
        Trainer(tiny_model(TASKS), data.train, data.val, _config(tmp_path / "run", steps=20), step_callback=vandalise,
                progress=False, loading=LoaderConfig(num_workers=0)).train()


def test_skip_bad_samples_keeps_training_and_logs_the_count(root, tmp_path):
    copy = Path(shutil.copytree(root, tmp_path / "root"))
    data = _data(copy)
    for entry in data.train["fetal_plane_cls"].items[1:]:  # training images only: evaluation never skips
        Path(entry.files[0]).write_bytes(b"truncated")
    result = Trainer(tiny_model(TASKS), data.train, data.val, _config(tmp_path / "run", steps=6), progress=False,
                     loading=LoaderConfig(num_workers=0, skip_bad_samples=True)).train()
    assert result.steps_done == 6
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    counts = [e["bad_samples"] for e in log if "bad_samples" in e]
    assert counts and counts[-1] >= 1
