"""The resize cache: every sample resized once to the training geometry and kept on disk in large
uint8 shards, memory-mapped on read, each with a JSON index.

Decoding an 800×540 PNG and resizing it costs milliseconds per image on every epoch; reading a
224×224×3 slice of a memory-mapped shard from the page cache costs microseconds. A cache of a
million images is a few hundred shard files, not three million small files.

A cache folder holds ONE geometry (the model's input size and resize mode)::

    cache.json           {"format": 2, "image_size": [H, W], "resize_mode": "letterbox"}
    shards/NAME.bin      entries' bytes back to back: the image (H·W·3 uint8; an image shared by
                         several entries of the shard, e.g. one scan's four HC18 tasks, is stored once),
                         then the mask (H·W uint8) when the label is one
    shards/NAME.json     {"format", "image_size", "resize_mode", "bytes": size of NAME.bin,
                          "entries": [{"id", "stamp", "task", "source", "original_size", "decoded_size",
                                       "meta", "image": offset, "mask": offset or null,
                                       "label": other labels or null, "checksum"}, ...]}
    .build.lock          held (flock) by the process that is building

An entry's ``id`` is what it is read from and how (`cache_records.entry_identity`); its ``stamp``
is the size and modification time of each source file, so an edited or replaced source is
detected, named, and read from the source instead (``m2dino data cache`` rebuilds it). Its
``checksum`` (BLAKE2b of its bytes) is verified the first time a process reads it: a shard that
was edited on disk is named in a warning and its entries are read from their sources until
``m2dino data cache`` rebuilds them; a shard shorter or longer than its index says is refused the
same way, whole. A folder built for another size or resize mode is refused naming both values;
a folder in the old layout (three files per image) is refused and must be rebuilt.

Builders take ``.build.lock``, so a second builder of the same folder waits, then finds the
entries current. Shards are written under temporary names and renamed into place, the index
last, so a reader (which takes no lock) never sees half a shard. Normalisation (mean/std) does not
enter the cache: it stores uint8 pixels before normalisation, so one cache serves any model with
the same input size and resize mode. Evaluation does not use the cache: it scores in the original
pixels.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import secrets
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..image import ResizeGeometry
from .cache_records import (
    changed_file,
    checksum,
    decode,
    describe,
    entry_identity,
    image_nbytes,
    is_pixel_label,
    label_record,
    source_stamp,
)
from .collection import LazySample
from .errors import DataError
from .sample import Sample
from .transforms import resize_sample

FORMAT = 2
MANIFEST = "cache.json"
SHARDS = "shards"
LOCK_FILE = ".build.lock"
SHARD_BYTES = 1 << 30       # a shard's bytes at most (about 6,500 entries with masks at 224 px)
SHARD_ENTRIES = 4096        # and its entries: a JSON index a reader parses in well under a second
_OLD_ENTRY_FOLDER = re.compile(r"[0-9a-f]{2}")


class ResizeCache:
    """A cache folder at one geometry: ``cache.load(entry)`` -> (resized `Sample`, `ResizeGeometry`
    from the decoded image), from a shard when it holds a current copy, else decoded and resized.
    ``cache.build(entries)`` stores the missing ones. Picklable: each process maps the shards it
    reads lazily, on first use."""

    def __init__(self, root: str | Path, image_size: tuple[int, int], resize_mode: str = "letterbox") -> None:
        self.root = Path(root)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.resize_mode = resize_mode
        self._open_manifest()
        self._entries: dict[str, tuple[str, dict]] | None = None  # id -> (shard name, record)
        self._shard_bytes: dict[str, int] = {}
        self._reset_process_state()

    def __repr__(self) -> str:
        size = "x".join(map(str, self.image_size))
        return f"ResizeCache({str(self.root)!r}, {size}, {self.resize_mode!r})"

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in ("_maps", "_verified", "_warned"):  # per process: a worker maps and verifies on its own
            del state[name]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset_process_state()

    def _reset_process_state(self) -> None:
        self._maps: dict[str, np.memmap | None] = {}
        self._verified: set[str] = set()
        self._warned: set[str] = set()

    @property
    def shards(self) -> Path:
        return self.root / SHARDS

    # ------------------------------------------------------------------------------------- reading
    def load(self, entry: Sample | LazySample) -> tuple[Sample, ResizeGeometry]:
        """``entry`` resized to the cache's geometry, from the cache when it holds a current, intact
        copy, otherwise decoded and resized (not stored: `build` stores)."""
        found = self._lookup(entry)
        if found is not None:
            record, sample = found
            return sample, self._geometry(tuple(record["decoded_size"]))
        sample = entry.load() if isinstance(entry, LazySample) else entry
        geometry = self._geometry(sample.size)
        return resize_sample(sample, geometry), geometry

    def contains(self, entry: Sample | LazySample, verify: bool = False) -> bool:
        """Whether the cache holds a current copy of ``entry`` (with ``verify``: one whose bytes
        match their checksum)."""
        record = self._current(entry)
        if record is None:
            return False
        return self._read(*record) is not None if verify else True

    def _geometry(self, decoded_size: tuple[int, int]) -> ResizeGeometry:
        return ResizeGeometry.create(decoded_size, self.image_size, self.resize_mode)

    def _lookup(self, entry: Sample | LazySample) -> tuple[dict, Sample] | None:
        found = self._current(entry)
        if found is None:
            return None
        sample = self._read(*found)
        return None if sample is None else (found[1], sample)

    def _current(self, entry: Sample | LazySample) -> tuple[str, dict] | None:
        """(shard, record) of ``entry`` when its source has not changed since it was stored."""
        identity = entry_identity(entry)
        found = None if identity is None else self._index().get(identity)
        if found is None:
            return None
        changed = changed_file(entry, found[1]["stamp"])
        if changed is not None:
            self._warn_once(identity, f"{changed}: changed since it was put in the resize cache {self.root}; "
                                      "reading it from its source (`m2dino data cache` rebuilds the entry)")
            return None
        return found

    def _read(self, shard: str, record: dict) -> Sample | None:
        """The stored sample, or None (warned) when its shard or bytes cannot be trusted."""
        stored = self._bytes(shard, record)
        if stored is None:
            return None
        if record["id"] not in self._verified:
            if not _intact(record, *stored):
                self._warn_once(record["id"], f"{self._bin(shard)}: the entry of {record['source']} does not match "
                                              "its checksum (changed on disk); reading it from its source "
                                              "(`m2dino data cache` rebuilds the shard)")
                return None
            self._verified.add(record["id"])
        height, width = self.image_size
        image, mask = stored
        return decode(record, image.reshape(height, width, 3), None if mask is None else mask.reshape(height, width))

    def _bytes(self, shard: str, record: dict) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Copies of an entry's image and mask bytes (flat), or None when its shard is unusable."""
        data = self._map(shard)
        if data is None:
            return None
        start, mask, pixels = record["image"], record["mask"], self.image_size[0] * self.image_size[1]
        image = np.array(data[start:start + image_nbytes(self.image_size)])
        return image, None if mask is None else np.array(data[mask:mask + pixels])

    def _map(self, shard: str) -> np.memmap | None:
        if shard not in self._maps:
            problem = self._shard_problem(shard)
            if problem is not None:
                self._warn_once(shard, f"{problem}; reading its entries from their sources "
                                       "(`m2dino data cache` rebuilds the shard)")
                self._maps[shard] = None
            else:
                self._maps[shard] = np.memmap(self._bin(shard), dtype=np.uint8, mode="r")
        return self._maps[shard]

    def _shard_problem(self, shard: str) -> str | None:
        """Why a shard's bytes cannot be used as a whole (missing, truncated, extended), else None."""
        path, expected = self._bin(shard), self._shard_bytes[shard]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path}: missing (removed while this process read the cache's index)"
        if size != expected:
            return f"{path}: {size} bytes, but its index {path.with_suffix('.json').name} says {expected} (truncated " \
                   "or extended)"
        return None

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=4)

    def _bin(self, shard: str) -> Path:
        return self.shards / f"{shard}.bin"

    # --------------------------------------------------------------------------------------- index
    def _index(self, quiet: bool = False) -> dict[str, tuple[str, dict]]:
        """id -> (shard, record) over every readable shard index (``quiet``: a builder, which
        names unreadable ones itself, as it removes them)."""
        if self._entries is None:
            self._entries, self._shard_bytes = {}, {}
            for shard, info in self._shard_indexes(on_bad=(lambda *_: None) if quiet else self._warn_unreadable):
                self._shard_bytes[shard] = info["bytes"]
                for record in info["entries"]:  # shards sort by creation time: a later copy wins
                    self._entries[record["id"]] = (shard, record)
        return self._entries

    def _shard_indexes(self, on_bad: Callable[[str, str], None]) -> Iterator[tuple[str, dict]]:
        """(name, parsed index) of every complete shard, oldest first; ``on_bad(name, why)`` for an
        index that cannot be read or belongs to another geometry."""
        if not self.shards.is_dir():
            return
        for index_file in sorted(self.shards.glob("*.json")):
            shard = index_file.stem
            try:
                info = json.loads(index_file.read_text())
                if (info["format"], info["image_size"], info["resize_mode"]) != (
                        FORMAT, list(self.image_size), self.resize_mode):
                    on_bad(shard, f"{index_file}: written for format {info['format']}, size {info['image_size']}, "
                                  f"mode {info['resize_mode']!r}; expected those of {MANIFEST}")
                    continue
                info["bytes"], info["entries"]  # noqa: B018 - a KeyError if missing
            except FileNotFoundError:  # removed by a builder since the listing
                continue
            except (OSError, ValueError, KeyError, TypeError) as err:
                on_bad(shard, f"{index_file}: unreadable shard index ({type(err).__name__}: {err})")
                continue
            yield shard, info

    def _warn_unreadable(self, shard: str, why: str) -> None:
        self._warn_once(shard, f"{why}; ignoring the shard (`m2dino data cache` rebuilds its entries)")

    # ------------------------------------------------------------------------------------ manifest
    def _open_manifest(self) -> None:
        """Create ``cache.json`` in a new folder; in an existing one, refuse another geometry or
        format, naming both values."""
        manifest = self.root / MANIFEST
        expected = {"format": FORMAT, "image_size": list(self.image_size), "resize_mode": self.resize_mode}
        if not manifest.is_file():
            self._refuse_old_layout()
            check_writable(self.root)
            _create_exclusively(manifest, json.dumps(expected).encode())  # a concurrent creator may win
        try:
            info = json.loads(manifest.read_text())
            found = {key: info[key] for key in expected}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"{manifest}: unreadable resize-cache manifest ({err}); delete the folder to rebuild "
                            "it") from None
        if found["format"] != FORMAT:
            raise DataError(f"{manifest}: resize-cache format {found['format']}, but this m2dino reads format "
                            f"{FORMAT}; delete the folder (or choose another --cache-dir) and rebuild it with "
                            "`m2dino data cache`")
        if found["image_size"] != expected["image_size"]:
            built, wanted = "x".join(map(str, found["image_size"])), "x".join(map(str, self.image_size))
            raise DataError(f"{manifest}: resize cache built for image size {built}, not {wanted} (the model's "
                            f"input); choose another --cache-dir or build one with `m2dino data cache --size "
                            f"{wanted}`")
        if found["resize_mode"] != self.resize_mode:
            raise DataError(f"{manifest}: resize cache built for resize mode {found['resize_mode']!r}, not "
                            f"{self.resize_mode!r} (the model's); choose another --cache-dir or build one with "
                            f"`m2dino data cache --resize-mode {self.resize_mode}`")

    def _refuse_old_layout(self) -> None:
        if self.root.is_dir() and any(p.is_dir() and _OLD_ENTRY_FOLDER.fullmatch(p.name) and any(p.glob("*.json"))
                                      for p in self.root.iterdir()):
            raise DataError(f"{self.root}: a resize cache in the old layout (three files per image, written by "
                            f"m2dino before cache format {FORMAT}); delete it (or choose another --cache-dir) and "
                            "rebuild it with `m2dino data cache`")

    # ------------------------------------------------------------------------------------ building
    def build(self, entries: Sequence[Sample | LazySample], workers: int = 0, progress: bool | None = True,
              verify: bool = True, skip_unreadable: bool = False) -> dict[str, int]:
        """Store every cacheable entry that the cache does not hold current, in new shards (written
        by ``workers`` processes, or this one). ``verify`` reads the shards holding the current
        entries and checks every checksum (else only their sizes): a damaged shard's entries are
        rebuilt and the shard removed. An entry that cannot be read stops the build naming its
        file, or with ``skip_unreadable`` is left out (and counted). Returns how many entries were
        built, already current, not cacheable, or unreadable; ``progress`` None shows a bar on a
        terminal only."""
        counts = {"built": 0, "current": 0, "not_cacheable": 0, "unreadable": 0}
        check_writable(self.root)
        with _build_lock(self.root):
            self._entries = None  # another builder may have finished while this one waited
            index = self._index(quiet=True)
            todo, held, seen = [], [], set()
            for entry in entries:
                identity = entry_identity(entry)
                if identity is None:
                    counts["not_cacheable"] += 1
                elif identity not in seen:  # the same entry listed twice is built once
                    seen.add(identity)
                    found = index.get(identity)
                    try:
                        current = found is not None and source_stamp(entry) == found[1]["stamp"]
                    except DataError:  # a source gone: writing reports (or skips) it
                        current = False
                    (held if current else todo).append((entry, found))
            damaged = self._damaged({shard for _, (shard, _) in held}, verify)
            counts["current"] = sum(1 for _, (shard, _) in held if shard not in damaged)
            todo = [entry for entry, _ in todo] + [entry for entry, (shard, _) in held if shard in damaged]
            stored = self._write(todo, workers, progress, skip_unreadable)
            counts["built"], counts["unreadable"] = stored, len(todo) - stored
            for shard in damaged:  # their entries now live in the new shards; the index file goes first
                (self.shards / f"{shard}.json").unlink(missing_ok=True)
                self._bin(shard).unlink(missing_ok=True)
            self._entries = None
            self._reset_process_state()
        return counts

    def _damaged(self, shards: set[str], verify: bool) -> set[str]:
        """The shards among ``shards`` that cannot be trusted, each named in a warning, plus every
        unreadable shard index in the folder."""
        damaged: set[str] = set()

        def condemn(shard: str, why: str) -> None:
            damaged.add(shard)
            warnings.warn(f"{why}; rebuilding its entries", stacklevel=4)

        for shard, info in self._shard_indexes(on_bad=condemn):
            if shard not in shards:
                continue
            problem = self._shard_problem(shard)
            if problem is not None:
                condemn(shard, problem)
                continue
            if verify:
                bad = next((r for r in info["entries"] if not _intact(r, *self._bytes(shard, r))), None)
                if bad is not None:
                    condemn(shard, f"{self._bin(shard)}: the entry of {bad['source']} does not match its checksum "
                                   "(changed on disk)")
        return damaged

    def _write(self, todo: list[LazySample], workers: int, progress: bool | None, skip_unreadable: bool) -> int:
        """Shards holding ``todo``; how many entries they hold."""
        from tqdm.auto import tqdm

        todo = sorted(todo, key=lambda entry: tuple(entry.files))  # an image's tasks together: stored once
        per_entry = image_nbytes(self.image_size) + self.image_size[0] * self.image_size[1]
        size = max(1, min(SHARD_ENTRIES, SHARD_BYTES // per_entry))
        if workers > 0:  # several shards per worker, so that the bar moves and the last one is short
            size = max(1, min(size, math.ceil(len(todo) / (workers * 4))))
        chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
        size_text = "x".join(map(str, self.image_size))
        bar = tqdm(total=len(todo), desc=f"caching at {size_text}", unit="image",
                   disable=None if progress is None else not progress)
        self.shards.mkdir(exist_ok=True)
        args = (self.shards, self.image_size, self.resize_mode)
        stored = 0
        if workers > 0 and len(chunks) > 1:
            from concurrent.futures import ProcessPoolExecutor, as_completed

            with ProcessPoolExecutor(workers) as pool:
                futures = {pool.submit(write_shard, *args, chunk, skip_unreadable): len(chunk) for chunk in chunks}
                for done in as_completed(futures):
                    stored += len(done.result())
                    bar.update(futures[done])
        else:
            for chunk in chunks:
                stored += len(write_shard(*args, chunk, skip_unreadable, on_entry=lambda: bar.update(1)))
        bar.close()
        return stored


def write_shard(folder: Path, image_size: tuple[int, int], resize_mode: str, entries: Sequence[LazySample],
                skip_unreadable: bool = False, on_entry: Callable[[], object] | None = None) -> list[dict]:
    """Decode, resize and store ``entries`` as one new shard in ``folder`` (none when no entry
    could be read); its records."""
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(3)}"
    files = {suffix: (folder / f".{name}{suffix}.tmp", folder / f"{name}{suffix}") for suffix in (".bin", ".json")}
    records, offset, images = [], 0, {}
    try:
        with open(files[".bin"][0], "wb") as out:
            for entry in entries:
                if on_entry is not None:
                    on_entry()
                try:
                    stamp = source_stamp(entry)  # before decoding: a file changed meanwhile is rebuilt next time
                    sample = _load(entry)
                except DataError:
                    if skip_unreadable:
                        continue
                    raise
                resized = resize_sample(sample, ResizeGeometry.create(sample.size, image_size, resize_mode))
                image = np.ascontiguousarray(resized.image)
                image_sum = checksum(image)
                if image_sum not in images:
                    images[image_sum], offset = offset, offset + out.write(image.data)
                mask = np.ascontiguousarray(resized.label) if is_pixel_label(resized) else None
                mask_offset = None
                if mask is not None:
                    mask_offset, offset = offset, offset + out.write(mask.data)
                records.append({"id": entry_identity(entry), "stamp": stamp, **describe(resized),
                                "decoded_size": list(sample.size), "image": images[image_sum], "mask": mask_offset,
                                "label": None if mask is not None else label_record(resized),
                                "checksum": checksum(image, b"" if mask is None else mask)})
            out.flush()
            os.fsync(out.fileno())
        index = {"format": FORMAT, "image_size": list(image_size), "resize_mode": resize_mode, "bytes": offset,
                 "entries": records}
        if not records:
            raise _NothingToStore
        files[".json"][0].write_text(json.dumps(index))
        os.replace(*files[".bin"])
        os.replace(*files[".json"])  # last: a shard is complete once its index is in place
    except BaseException as err:
        for tmp, _ in files.values():
            tmp.unlink(missing_ok=True)
        if not isinstance(err, _NothingToStore):
            raise
    return records


class _NothingToStore(Exception):
    """Every entry of a shard was unreadable (and skipped): no shard is written."""


def _load(entry: LazySample) -> Sample:
    try:
        return entry.load()
    except OSError as err:  # e.g. a file that turned unreadable under a lazy loader
        raise DataError(f"{entry.source}: {err}") from err


def _intact(record: dict, image: np.ndarray, mask: np.ndarray | None) -> bool:
    return checksum(image, b"" if mask is None else mask) == record["checksum"]


@contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Hold ``root/.build.lock`` (flock; released by the OS if this process dies). The file is
    never removed, so every builder locks the same inode."""
    with open(root / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{root}: another process is building this resize cache; waiting for it to finish",
                  file=sys.stderr)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def _create_exclusively(path: Path, data: bytes) -> None:
    """Write ``path`` atomically unless it exists (then leave the existing file: one creator wins)."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        Path(tmp).unlink(missing_ok=True)


def check_writable(root: Path) -> None:
    """Create ``root`` and write a probe file, so an unusable cache folder fails before training."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as err:
        raise DataError(f"resize cache folder {root} is not writable ({err.strerror or err}); "
                        "choose another --cache-dir") from None


def build_cache(entries: Sequence[Sample | LazySample], root: str | Path, image_size: tuple[int, int],
                resize_mode: str = "letterbox", workers: int = 0, progress: bool | None = True) -> dict[str, int]:
    """Resize every entry into the cache at ``root`` ahead of training (``m2dino data cache``);
    ``workers`` > 0 builds in that many processes. Returns how many entries were built, already
    current, or not cacheable."""
    return ResizeCache(root, image_size, resize_mode).build(entries, workers, progress)
