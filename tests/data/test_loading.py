"""Training loader: lazy roots, workers, the memory and disk resize caches, bad files (tiny synthetic roots)."""

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from m2dino.data import DataError, SampleCollection, read_fmc
from m2dino.data.cache import ResizeCache
from m2dino.data.loading import (
    LoaderConfig,
    build_train_loader,
    default_num_workers,
)
from m2dino.data.memory_cache import memory_cache_bytes
from m2dino.data.sampling import TaskSampler
from m2dino.data.synthetic import write_synthetic
from m2dino.data.transforms import resize_sample
from m2dino.image import Preprocessing

TASKS = ["fetal_head", "fetal_plane_cls", "fetal_head_det", "fetal_femur", "fetal_head_circumference"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    return write_synthetic(out, 4, (40, 48), splits=("train",), tasks=TASKS)["train"]


def _samples(root: Path) -> dict:
    return read_fmc(root, lazy=True).by_task()


LAZY = 0  # memory_cache_bytes that turns the memory cache off: every sample decoded at every use


def _batches(samples, workers: int = 0, cache_dir=None, steps: int = 4, skip: bool = False, seed: int = 3,
             memory: int = LoaderConfig.memory_cache_bytes):
    sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size=3, seed=seed)
    config = LoaderConfig(num_workers=workers, cache_dir=cache_dir, skip_bad_samples=skip, memory_cache_bytes=memory)
    loader = build_train_loader(samples, sampler, Preprocessing(32), config=config)
    out = []
    for batch in loader:
        out.append(batch)
        if len(out) == steps:
            break
    return out, loader


def _same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["task"] == y["task"] and x["source"] == y["source"]
        assert torch.equal(x["pixel_values"], y["pixel_values"])
        tx, ty = x["targets"], y["targets"]
        if isinstance(tx, list):
            assert all(torch.equal(p, q) for p, q in zip(tx, ty))
        else:
            assert torch.equal(tx, ty)
        assert x["geometry"] == y["geometry"]


def _explode(source: str):
    raise RuntimeError(f"decoded {source}")


def _undecodable(collection) -> SampleCollection:
    return SampleCollection(dataclasses.replace(e, load=functools.partial(_explode, e.source))
                            for e in collection.items)


def test_a_lazy_root_decodes_nothing_to_build_the_loader_or_the_scalar_statistics(root):
    samples = {task: _undecodable(items) for task, items in _samples(root).items()}
    sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size=3)
    loader = build_train_loader(samples, sampler, Preprocessing(32),
                                config=LoaderConfig(num_workers=0, memory_cache_bytes=LAZY))
    assert len(loader) == len(sampler)
    values = samples["fetal_head_circumference"].labels()
    assert values == [s.label for s in _samples(root)["fetal_head_circumference"]]
    with pytest.raises(RuntimeError, match="decoded"):
        next(iter(loader))


def test_a_set_that_fits_the_memory_budget_is_decoded_once_before_training(root, monkeypatch):
    samples = _samples(root)
    with pytest.raises(RuntimeError, match="decoded"):  # by default every sample is decoded up front...
        _batches({task: _undecodable(items) for task, items in samples.items()}, steps=1)
    _, loader = _batches(samples, workers=2, steps=1)
    assert type(loader.dataloader.dataset.cache).__name__ == "MemoryCache"
    monkeypatch.setattr("m2dino.data.fmc.index.read_image", _explode)  # ...and never again
    assert len([batch for _, batch in zip(range(6), loader)]) == 6
    # One byte under what the resized set needs: decoded at every use instead.
    needed = memory_cache_bytes(samples, (32, 32))
    with pytest.raises(RuntimeError, match="decoded"):
        _batches(samples, steps=1, memory=needed - 1)


def test_zero_and_two_workers_and_both_caches_give_bit_identical_batches(root, tmp_path):
    samples = _samples(root)
    serial, _ = _batches(samples, workers=0, memory=LAZY)  # decoded and resized at every use
    _same(serial, _batches(samples, workers=2, memory=LAZY)[0])
    _same(serial, _batches(samples, workers=0)[0])  # the default: the set resized once, in memory
    _same(serial, _batches(samples, workers=2)[0])
    cold, _ = _batches(samples, workers=0, cache_dir=tmp_path / "cache")
    warm, _ = _batches(samples, workers=2, cache_dir=tmp_path / "cache")
    _same(serial, cold)
    _same(serial, warm)
    assert {b["task"] for b in serial} & {"fetal_head", "fetal_head_det", "fetal_femur"}  # labels that move


def test_the_sampler_counts_consumed_batches_not_prefetched_ones(root):
    samples = _samples(root)
    full, _ = _batches(samples, workers=2, steps=6)
    head, loader = _batches(samples, workers=2, steps=2)
    assert loader.sampler.state_dict()["step"] == 2  # the workers prefetched more than that
    sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size=3, seed=3)
    sampler.load_state_dict(loader.sampler.state_dict())
    resumed = build_train_loader(samples, sampler, Preprocessing(32), config=LoaderConfig(num_workers=2))
    rest = [batch for _, batch in zip(range(4), resumed)]
    _same(full, head + rest)


def test_the_cache_stores_each_entry_once_and_reads_a_changed_source_from_the_source(root, tmp_path):
    samples = _samples(root)
    cache = ResizeCache(tmp_path / "cache", (32, 32))
    entry = samples["fetal_head"].entry(0)
    assert cache.build([entry], progress=False)["built"] == 1
    first, geometry = cache.load(entry)
    assert first.image.shape == (32, 32, 3) and first.label.shape == (32, 32)
    assert geometry.original_size == (40, 48) and first.original_size == (40, 48)
    assert cache.contains(entry, verify=True)
    stored = sorted(f"{p.parent.name}/{p.suffix}" if p.parent.name == "shards" else p.name
                    for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert stored == [".build.lock", "cache.json", "shards/.bin", "shards/.json"]  # one shard: its bytes, its index
    # Replace the source: named, and read from it until the cache is rebuilt.
    image_file = Path(entry.files[0])
    from PIL import Image
    Image.fromarray(np.full((40, 48), 200, np.uint8)).save(image_file)
    os.utime(image_file, ns=(1, 1))
    with pytest.warns(UserWarning, match=rf"{image_file}: changed since it was put in the resize cache"):
        assert not cache.contains(entry)
    rebuilt, _ = cache.load(entry)
    assert rebuilt.image[16, 16, 0] == 200
    assert ResizeCache(tmp_path / "cache", (32, 32)).build([entry], progress=False)["built"] == 1
    again, _ = ResizeCache(tmp_path / "cache", (32, 32)).load(entry)
    assert np.array_equal(again.image, rebuilt.image)
    scalar = samples["fetal_head_circumference"].entry(0)
    cache.build([scalar], progress=False)
    value, _ = ResizeCache(tmp_path / "cache", (32, 32)).load(scalar)
    assert value.label == scalar.label and isinstance(value.label, float)


def test_an_unwritable_cache_folder_fails_before_training(root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    sampler = TaskSampler({"fetal_head": 4}, batch_size=2)
    with pytest.raises(DataError, match=f"resize cache folder {blocker / 'cache'} is not writable"):
        build_train_loader(_samples(root), sampler, Preprocessing(32),
                           config=LoaderConfig(cache_dir=str(blocker / "cache")))


def _copy_root(root: Path, tmp_path: Path) -> Path:
    import shutil
    return Path(shutil.copytree(root, tmp_path / "copy"))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_that_disappears_mid_run_stops_the_run_naming_it(root, tmp_path, workers):
    copy = _copy_root(root, tmp_path)
    samples = {"fetal_plane_cls": _samples(copy)["fetal_plane_cls"]}
    gone = Path(samples["fetal_plane_cls"].entry(1).files[0])
    gone.unlink()
    with pytest.raises(DataError, match=f"image file not found: {gone}"):
        _batches(samples, workers=workers, steps=3)


@pytest.mark.parametrize("where", ["memory", "decoded at use", "disk cache"])
def test_skip_bad_samples_replaces_and_counts_them(root, tmp_path, where):
    copy = _copy_root(root, tmp_path)
    samples = {"fetal_plane_cls": _samples(copy)["fetal_plane_cls"]}
    broken = Path(samples["fetal_plane_cls"].entry(2).files[0])
    broken.write_bytes(b"not a png any more")
    options = {"memory": {}, "decoded at use": {"memory": LAZY}, "disk cache": {"cache_dir": tmp_path / "cache"}}
    batches, loader = _batches(samples, workers=2, steps=2, skip=True, **options[where])
    assert sum(len(b["source"]) for b in batches) == 4  # a batch of 3 and one of 1: every position filled
    assert len(loader.bad_samples) == 1 and str(broken) in loader.bad_samples[0]
    assert all(str(broken) not in b["source"] for b in batches)


@pytest.mark.parametrize("load", [functools.partial(_explode, "boom.png"), functools.partial(os._exit, 3)],
                         ids=["exception", "hard-exit"])
def test_a_worker_crash_surfaces_instead_of_hanging(root, load):
    samples = {"fetal_plane_cls": SampleCollection(dataclasses.replace(e, load=load)
                                                   for e in _samples(root)["fetal_plane_cls"].items)}
    expected = "(?s)DataLoader worker process.*decoded boom.png" if load.func is _explode else "exited unexpectedly"
    with pytest.raises(RuntimeError, match=expected):
        _batches(samples, workers=2, steps=1, memory=LAZY)  # decoded in the DataLoader's workers


def test_default_workers_leave_a_core_for_the_training_loop():
    cores = len(os.sched_getaffinity(0))
    assert default_num_workers() == max(0, min(8, cores - 1))
    assert default_num_workers(num_processes=cores) == 0
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        LoaderConfig(num_workers=-1)


def test_the_cache_command_builds_every_entry_ahead_and_reuses_them(root, tmp_path, capsys, monkeypatch):
    from m2dino.cli.main import main

    cache_dir = tmp_path / "cache"
    assert main(["data", "cache", str(root), "--size", "32", "--cache-dir", str(cache_dir), "--workers", "2"]) == 0
    assert f"{len(read_fmc(root, lazy=True))} resized, 0 already current" in capsys.readouterr().out
    cache = ResizeCache(cache_dir, (32, 32))
    assert all(cache.contains(e, verify=True) for e in read_fmc(root, lazy=True).items)
    assert main(["data", "cache", str(root), "--size", "32", "--cache-dir", str(cache_dir)]) == 0
    assert "0 resized" in capsys.readouterr().out
    # A warm cache needs no decoding: with the image reader broken, batches still come.
    monkeypatch.setattr("m2dino.data.fmc.index.read_image", _explode)
    batches, _ = _batches(_samples(root), cache_dir=cache_dir, steps=3)
    assert len(batches) == 3
    with pytest.raises(RuntimeError, match="decoded"):
        _batches(_samples(root), steps=1, memory=LAZY)


def _build(args):
    from m2dino.data.cache import build_cache

    root, cache_dir = args
    return build_cache(read_fmc(root, lazy=True).items, cache_dir, (32, 32), progress=False)


def test_several_processes_may_build_the_same_cache_at_once(root, tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    cache_dir = tmp_path / "shared"
    entries = read_fmc(root, lazy=True).items
    with ProcessPoolExecutor(3) as pool:
        counts = list(pool.map(_build, [(root, cache_dir)] * 3))
    assert all(c["built"] + c["current"] == len(entries) for c in counts)
    assert sum(c["built"] for c in counts) == len(entries)  # the lock: each entry built by one of them
    assert not [p for p in cache_dir.rglob(".*") if p.is_file() and p.name != ".build.lock"]  # no temporary file
    cache = ResizeCache(cache_dir, (32, 32))
    for entry in entries:
        cached, _ = cache.load(entry)
        fresh = entry.load()
        expected = resize_sample(fresh, Preprocessing(32).geometry(fresh.size))
        assert np.array_equal(cached.image, expected.image)
        assert np.array_equal(np.asarray(cached.label), np.asarray(expected.label))


def test_a_scan_shared_by_several_tasks_is_resized_once_with_the_same_result(monkeypatch):
    """HC18's adapter gives a scan's four tasks one decoded array; the memory cache resizes it once."""
    from m2dino.data import Sample, transforms
    from m2dino.data.memory_cache import MemoryCache
    from m2dino.image import ResizeGeometry

    rng = np.random.default_rng(0)
    samples: dict[str, list] = {"fetal_head": [], "fetal_head_det": [], "fetal_head_circumference": []}
    for scan in range(2):
        image = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
        mask = np.zeros((50, 60), np.uint8)
        mask[10:30, 15 + scan:40] = 1
        for task, label in (("fetal_head", mask), ("fetal_head_det", np.array([[15.0 + scan, 10, 40, 30]])),
                            ("fetal_head_circumference", 150.0 + scan)):
            samples[task].append(Sample(image, task, label, source=f"scan{scan}.png"))
    calls = []
    resize = transforms.resize_image
    monkeypatch.setattr(transforms, "resize_image", lambda *args: calls.append(1) or resize(*args))
    cache = MemoryCache(samples, (32, 32), progress=False)
    assert len(calls) == 2
    for task, items in samples.items():
        for index, sample in enumerate(items):
            got, geometry = cache.get(task, index)
            want = resize_sample(sample, ResizeGeometry.create(sample.size, (32, 32), "letterbox"))
            assert np.array_equal(got.image, want.image)
            assert np.array_equal(np.asarray(got.label), np.asarray(want.label))
