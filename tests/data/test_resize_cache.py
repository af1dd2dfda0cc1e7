"""The sharded resize cache's bad input: damaged shards, another geometry, the old layout, two
builders at once, pickling into workers (tiny synthetic roots)."""

import fcntl
import json
import multiprocessing
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from m2dino.data import DataError, read_fmc
from m2dino.data.cache import ResizeCache, write_shard
from m2dino.data.synthetic import write_synthetic
from m2dino.data.transforms import resize_sample
from m2dino.image import Preprocessing

SIZE = (32, 32)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    return write_synthetic(out, 3, (40, 48), splits=("train",), tasks=["fetal_head", "fetal_plane_cls"])["train"]


@pytest.fixture
def entries(root):
    return read_fmc(root, lazy=True).items


def _built(entries, folder: Path) -> ResizeCache:
    cache = ResizeCache(folder, SIZE)
    assert cache.build(entries, progress=False)["built"] == len(entries)
    return cache


def _expected(entry):
    sample = entry.load()
    return resize_sample(sample, Preprocessing(SIZE[0]).geometry(sample.size))


def _shard(folder: Path) -> Path:
    (shard,) = (folder / "shards").glob("*.bin")
    return shard


def _all_match(cache: ResizeCache, entries) -> None:
    for entry in entries:
        sample, _ = cache.load(entry)
        expected = _expected(entry)
        assert np.array_equal(sample.image, expected.image)
        assert np.array_equal(np.asarray(sample.label), np.asarray(expected.label))


def test_an_edited_shard_is_named_read_from_the_sources_and_rebuilt(entries, tmp_path):
    _built(entries, tmp_path / "cache")
    shard = _shard(tmp_path / "cache")
    data = bytearray(shard.read_bytes())
    data[10:20] = bytes(255 - b for b in data[10:20])  # same size: only the checksum can tell
    shard.write_bytes(bytes(data))
    first = json.loads(shard.with_suffix(".json").read_text())["entries"][0]["source"]
    with pytest.warns(UserWarning, match=rf"{shard}: the entry of {first} does not match its checksum \(changed on "
                                         r"disk\); reading it from its source"):
        _all_match(ResizeCache(tmp_path / "cache", SIZE), entries)
    with pytest.warns(UserWarning, match=rf"{shard}: the entry of .* does not match its checksum .*; rebuilding"):
        counts = ResizeCache(tmp_path / "cache", SIZE).build(entries, progress=False)
    assert counts["built"] == len(entries) and not shard.exists()  # the damaged shard is gone
    repaired = ResizeCache(tmp_path / "cache", SIZE)
    assert all(repaired.contains(entry, verify=True) for entry in entries)
    _all_match(repaired, entries)


def test_a_truncated_shard_is_named_with_both_sizes_and_rebuilt(entries, tmp_path):
    _built(entries, tmp_path / "cache")
    shard = _shard(tmp_path / "cache")
    size = shard.stat().st_size
    with open(shard, "r+b") as f:
        f.truncate(size - 7)
    with pytest.warns(UserWarning, match=rf"{shard}: {size - 7} bytes, but its index {shard.stem}.json says {size} "
                                         r"\(truncated or extended\); reading its entries from their sources"):
        _all_match(ResizeCache(tmp_path / "cache", SIZE), entries)
    with pytest.warns(UserWarning, match=rf"{shard}: {size - 7} bytes.*; rebuilding its entries"):
        ResizeCache(tmp_path / "cache", SIZE).build(entries, verify=False, progress=False)  # sizes are always checked
    _all_match(ResizeCache(tmp_path / "cache", SIZE), entries)


def test_an_unreadable_shard_index_is_named_and_its_entries_rebuilt(entries, tmp_path):
    _built(entries, tmp_path / "cache")
    index = _shard(tmp_path / "cache").with_suffix(".json")
    index.write_text(index.read_text()[:50])
    with pytest.warns(UserWarning, match=rf"{index}: unreadable shard index .*; ignoring the shard"):
        assert not ResizeCache(tmp_path / "cache", SIZE).contains(entries[0])
    with pytest.warns(UserWarning, match=rf"{index}: unreadable shard index .*; rebuilding its entries"):
        assert ResizeCache(tmp_path / "cache", SIZE).build(entries, progress=False)["built"] == len(entries)
    _all_match(ResizeCache(tmp_path / "cache", SIZE), entries)


@pytest.mark.parametrize("size, mode, expected", [
    ((64, 64), "letterbox", r"resize cache built for image size 32x32, not 64x64 \(the model's input\)"),
    ((32, 32), "stretch", r"resize cache built for resize mode 'letterbox', not 'stretch' \(the model's\)"),
])
def test_a_cache_built_for_another_geometry_is_refused_naming_both(entries, tmp_path, size, mode, expected):
    _built(entries[:1], tmp_path / "cache")
    with pytest.raises(DataError, match=rf"{tmp_path / 'cache' / 'cache.json'}: {expected}"):
        ResizeCache(tmp_path / "cache", size, mode)


def test_a_cache_in_the_old_layout_is_refused(tmp_path):
    old = tmp_path / "cache" / "ab"
    old.mkdir(parents=True)
    for suffix in ("image.npy", "label.npy", "json"):
        (old / f"ab12.{suffix}").write_bytes(b"old")
    with pytest.raises(DataError, match=r"a resize cache in the old layout \(three files per image, written by "
                                        r"m2dino before cache format 2\); delete it .* rebuild it"):
        ResizeCache(tmp_path / "cache", SIZE)


def test_the_cache_is_picklable_and_maps_its_shards_in_each_process(entries, tmp_path):
    cache = _built(entries, tmp_path / "cache")
    cache.load(entries[0])
    assert cache._maps  # this process mapped the shard...
    copy = pickle.loads(pickle.dumps(cache))
    assert not copy._maps and not copy._verified  # ...a worker maps and verifies on its own
    _all_match(copy, entries)


def _build_in_child(folder: str, root: str, go) -> None:
    go.wait(30)
    ResizeCache(folder, SIZE).build(read_fmc(root, lazy=True).items, progress=False)


def test_a_second_builder_waits_for_the_first_then_finds_the_entries_current(root, entries, tmp_path, capfd):
    folder = tmp_path / "cache"
    ResizeCache(folder, SIZE)  # creates the folder and its manifest
    context = multiprocessing.get_context("fork")
    go = context.Event()
    child = context.Process(target=_build_in_child, args=(str(folder), str(root), go))
    child.start()  # before the lock is taken: a forked child would share (and keep) this process's lock
    with open(folder / ".build.lock", "a+") as lock:  # this test plays the first builder, holding the lock
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        go.set()
        err, deadline = "", time.monotonic() + 30
        while "waiting" not in err and time.monotonic() < deadline:
            time.sleep(0.05)
            err += capfd.readouterr().err
        assert f"{folder}: another process is building this resize cache; waiting for it to finish" in err
        assert not (folder / "shards").exists()  # the second builder has written nothing
        (folder / "shards").mkdir()
        write_shard(folder / "shards", SIZE, "letterbox", entries)  # the first builder's work, under the lock
    child.join(30)
    assert child.exitcode == 0
    assert len(list((folder / "shards").glob("*.bin"))) == 1  # the second found every entry current
    _all_match(ResizeCache(folder, SIZE), entries)
