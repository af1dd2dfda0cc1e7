"""A resize cache: every sample resized once to the training geometry and kept on disk as
uncompressed uint8 arrays, memory-mapped on read.

Decoding a 512-px PNG and resizing it costs milliseconds per image on every epoch; reading a
224×224×3 uint8 array from the page cache costs microseconds. An entry is keyed by:

* the identity of every file the sample is read from (path, size in bytes, modification time),
  so a replaced or edited source gets a new key and is rebuilt on next use;
* the loader (function, arguments: the index-time label, adapter options), so a changed CSV
  label or option does not reuse stale pixels;
* the geometry (model-input size and resize mode).

An entry is three files under ``<cache>/<key[:2]>/``: ``<key>.image.npy``, ``<key>.label.npy``
and ``<key>.json`` (task, source, original size, meta, and a BLAKE2 checksum of each array file).
Each is written to a temporary name and renamed into place, the JSON last, so a reader never sees a
half-written entry and several processes may build the same entry at once (the last rename wins;
the contents are identical).

The checksums are verified the first time a process reads an entry (one read of its bytes, which
the memory map then finds in the page cache): an entry whose files were changed on disk (garbage of
the same size, a copy of another entry) is named in a warning and rebuilt from its source. An entry
written before checksums existed has none and is rebuilt the same way, once, on first use.
Evaluation does not use the cache: it scores in the original pixels.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..image import ResizeGeometry
from .collection import LazySample
from .errors import DataError
from .sample import Sample, meta_to_json
from .transforms import resize_sample

FORMAT_VERSION = 1


class ResizeCache:
    """``cache.load(entry, size, mode)`` -> (resized `Sample`, `ResizeGeometry` from the original)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._verified: set[str] = set()  # keys whose checksums this process has checked
        check_writable(self.root)

    def __repr__(self) -> str:
        return f"ResizeCache({str(self.root)!r})"

    def load(self, entry: Sample | LazySample, image_size: tuple[int, int],
             resize_mode: str = "letterbox") -> tuple[Sample, ResizeGeometry]:
        """The entry resized to ``image_size`` (H, W): from the cache when it holds a current copy,
        otherwise decoded, resized and stored. Entries that cannot be keyed (in-memory samples,
        lazy samples without ``files``) are resized each time and not stored."""
        key = entry_key(entry, image_size, resize_mode)
        if key is None:
            sample = entry.load() if isinstance(entry, LazySample) else entry
            geometry = ResizeGeometry.create(sample.size, image_size, resize_mode)
            return resize_sample(sample, geometry), geometry
        cached = self._read(key)
        if cached is not None:
            return cached, ResizeGeometry.create(cached.original_size, image_size, resize_mode)
        sample = entry.load()
        geometry = ResizeGeometry.create(sample.size, image_size, resize_mode)
        resized = resize_sample(sample, geometry)
        self._write(key, resized)
        return resized, geometry

    def contains(self, entry: Sample | LazySample, image_size: tuple[int, int], resize_mode: str = "letterbox",
                 verify: bool = False) -> bool:
        """Whether the cache holds a current entry (with ``verify``: one whose checksums match)."""
        key = entry_key(entry, image_size, resize_mode)
        if key is None or not self._paths(key)[2].is_file():
            return False
        return self._read(key) is not None if verify else True

    def _paths(self, key: str) -> tuple[Path, Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}.image.npy", folder / f"{key}.label.npy", folder / f"{key}.json"

    def _read(self, key: str) -> Sample | None:
        image_file, label_file, info_file = self._paths(key)
        try:
            info = json.loads(info_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise DataError(f"{info_file}: unreadable resize-cache entry ({err}); delete it to rebuild") from None
        try:
            if key in self._verified:
                image = np.load(image_file, mmap_mode="r")
                label = np.load(label_file)
            else:  # first use in this process: the files must be the bytes that were written
                image_bytes, label_bytes = image_file.read_bytes(), label_file.read_bytes()
                stale = _stale(info_file, info, {image_file: image_bytes, label_file: label_bytes})
                if stale:
                    warnings.warn(f"{stale}; rebuilding the resize-cache entry from its source", stacklevel=3)
                    return None
                image, label = np.load(io.BytesIO(image_bytes)), np.load(io.BytesIO(label_bytes))
                self._verified.add(key)
        except (OSError, ValueError) as err:
            raise DataError(f"{image_file}: unreadable resize-cache entry ({err}); delete it to rebuild") from None
        # A 0-d array was a class index or a measurement: give back the Python number.
        label = label.item() if label.ndim == 0 else label
        return Sample(np.asarray(image), info["task"], label, tuple(info["original_size"]), info["source"],
                      info["meta"])

    def _write(self, key: str, sample: Sample) -> None:
        image_file, label_file, info_file = self._paths(key)
        image_file.parent.mkdir(parents=True, exist_ok=True)
        image_bytes, label_bytes = _npy_bytes(np.ascontiguousarray(sample.image)), _npy_bytes(np.asarray(sample.label))
        _atomic(image_file, lambda f: f.write(image_bytes))
        _atomic(label_file, lambda f: f.write(label_bytes))
        info = {"task": sample.task, "source": sample.source, "original_size": list(sample.original_size),
                "meta": json.loads(meta_to_json(sample.meta)),
                "checksum": {"image": _checksum(image_bytes), "label": _checksum(label_bytes)}}
        _atomic(info_file, lambda f: f.write(json.dumps(info).encode()))
        self._verified.add(key)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _checksum(data: bytes) -> str:
    return "blake2b:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def _stale(info_file: Path, info: dict, files: dict[Path, bytes]) -> str | None:
    """Why an entry's files cannot be trusted (no checksums; a file whose bytes differ), else None."""
    recorded = info.get("checksum")
    if not isinstance(recorded, dict):
        return f"{info_file}: no checksum (an entry written by an older m2dino)"
    for file, data in files.items():
        if recorded.get(file.name.split(".")[-2]) != _checksum(data):  # <key>.image.npy -> "image"
            return f"{file}: does not match its checksum in {info_file.name} (changed on disk)"
    return None


def check_writable(root: Path) -> None:
    """Create ``root`` and write a probe file, so an unusable cache folder fails before training."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as err:
        raise DataError(f"resize cache folder {root} is not writable ({err.strerror or err}); "
                        "choose another --cache-dir") from None


def entry_key(entry: Sample | LazySample, image_size: tuple[int, int], resize_mode: str) -> str | None:
    """The cache key of ``entry`` at this geometry, or None when it cannot be keyed."""
    if not isinstance(entry, LazySample) or not entry.files:
        return None
    loader = _loader_fingerprint(entry.load)
    if loader is None:
        return None
    files = []
    for file in entry.files:
        try:
            stat = os.stat(file)
        except OSError as err:
            raise DataError(f"{file}: cannot read the source of {entry.source} ({err.strerror or err})") from None
        files.append([str(file), stat.st_size, stat.st_mtime_ns])
    text = json.dumps([FORMAT_VERSION, entry.task, files, loader, list(image_size), resize_mode],
                      default=_stable)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _loader_fingerprint(load: Any) -> str | None:
    """What a loader computes, as text: its function and arguments (``functools.partial``) or its
    bound object (a bound method of a dataclass such as `FMCRecord`)."""
    if isinstance(load, functools.partial):
        return json.dumps([_qualname(load.func), load.args, load.keywords], default=_stable, sort_keys=True)
    owner = getattr(load, "__self__", None)
    if owner is not None:
        return f"{_qualname(load.__func__)}:{owner!r}"
    return None


def _qualname(func: Any) -> str:
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def _stable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _atomic(path: Path, write) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_cache(entries: Sequence[Sample | LazySample], root: str | Path, image_size: tuple[int, int],
                resize_mode: str = "letterbox", workers: int = 0, progress: bool = True) -> dict[str, int]:
    """Resize every entry into the cache at ``root`` ahead of training (``m2dino data cache``);
    ``workers`` > 0 builds in that many processes. Returns how many entries were built, already
    current, or not cacheable."""
    from tqdm.auto import tqdm

    cache = ResizeCache(root)
    counts = {"built": 0, "current": 0, "not_cacheable": 0}
    todo = []
    for entry in entries:
        if entry_key(entry, image_size, resize_mode) is None:
            counts["not_cacheable"] += 1
        elif cache.contains(entry, image_size, resize_mode, verify=True):  # a changed entry is rebuilt
            counts["current"] += 1
        else:
            todo.append(entry)
    build = functools.partial(_build_one, cache, image_size, resize_mode)
    bar = tqdm(total=len(todo), desc=f"caching at {image_size[0]}x{image_size[1]}", unit="image", disable=not progress)
    if workers > 0 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(build, todo, chunksize=16):
                bar.update(1)
    else:
        for entry in todo:
            build(entry)
            bar.update(1)
    bar.close()
    counts["built"] = len(todo)
    return counts


def _build_one(cache: ResizeCache, image_size: tuple[int, int], resize_mode: str, entry: LazySample) -> None:
    cache.load(entry, image_size, resize_mode)
