"""Unlabelled images as a data source (for semi-supervised and self-supervised training).

`UnlabeledSource` is a sequence of images decoded on access; ``source[i]`` is an
`UnlabeledImage` (uint8 H×W×3 and where it came from). Build one from

* a folder tree of images in any common format (`UnlabeledSource.from_folder`),
* an FMC_UIA root or a public dataset through its adapter, labels ignored, each image once
  even when several tasks label it (`from_fmc`, `from_adapter`),
* a Hugging Face `datasets.Dataset` with an image column (`from_hf`).

Held-out images must never be trained on, labelled or not: `UnlabeledSource.without` compares
the source against validation/test data (same file by path, same bytes under another name, or
same decoded pixels in another file: re-saved, re-compressed losslessly, another format) and
raises an error naming the files, or, with ``on_overlap="exclude"``, drops them and says
how many. The entries are picklable, so a source can back DataLoader workers.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from ..image import ImageFormatError, read_image, to_rgb_uint8
from .collection import LazySample, SampleCollection
from .errors import DataError, MissingFileError
from .sample import Sample

logger = logging.getLogger(__name__)

# Formats Pillow decodes without plugins; matched case-insensitively.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class UnlabeledImage:
    image: np.ndarray  # uint8 H×W×3
    source: str


@dataclass(frozen=True)
class _Entry:
    source: str
    load: Callable[[], np.ndarray]  # picklable: a partial of a module-level function or a bound method
    file: str | None = None         # the encoded file, when there is one (identity checks read its bytes)
    encoded: Callable[[], bytes] | None = None  # the encoded bytes otherwise (a Hugging Face row)


class UnlabeledSource(Sequence[UnlabeledImage]):
    """Images without labels, decoded when indexed. ``sources`` lists them without decoding."""

    def __init__(self, entries: Iterable[_Entry], description: str = "unlabelled images") -> None:
        self._entries = list(entries)
        self.description = description

    # ------------------------------------------------------------------------ constructors
    @classmethod
    def from_folder(cls, root: str | Path, recursive: bool = True,
                    suffixes: Sequence[str] = IMAGE_SUFFIXES) -> UnlabeledSource:
        """Every image file under ``root`` (sorted by path; hidden folders skipped)."""
        root = Path(root)
        if not root.is_dir():
            raise MissingFileError(f"unlabelled image folder not found: {root}")
        wanted = {s.lower() for s in suffixes}
        files = []
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith(".")) if recursive else []
            files += [Path(folder) / n for n in names if Path(n).suffix.lower() in wanted]
        if not files:
            raise DataError(f"{root}: no image files ({', '.join(sorted(wanted))}) in it"
                            f"{' or its subfolders' if recursive else ''}")
        return cls((_Entry(str(f), partial(read_rgb, str(f)), str(f)) for f in sorted(files)), f"folder {root}")

    @classmethod
    def from_fmc(cls, root: str | Path, tasks: list[str] | None = None) -> UnlabeledSource:
        """The distinct images of an FMC_UIA root (labels and masks are not read). The layout keeps one
        copy of an image in each task folder that labels it, so copies are found by content (files of
        equal size are hashed) and the first one is kept: each image is sampled once, not per task."""
        from .fmc import read_fmc_index

        entries, seen = [], set()
        for record in read_fmc_index(root, tasks):
            if record.image_file not in seen:
                seen.add(record.image_file)
                entries.append(_Entry(str(record.image_file), record.load_image, str(record.image_file)))
        return cls(_first_of_each_content(entries), f"FMC root {root} (labels ignored)")

    @classmethod
    def from_samples(cls, samples: Iterable[Sample | LazySample], description: str = "samples (labels ignored)"
                     ) -> UnlabeledSource:
        """The distinct images (by ``source``) of labelled samples, labels ignored."""
        entries, seen = [], set()
        for item in (samples.items if isinstance(samples, SampleCollection) else samples):
            if item.source in seen:
                continue
            seen.add(item.source)
            load = partial(_image_of, item)
            file = item.files[0] if isinstance(item, LazySample) and item.files else None
            entries.append(_Entry(item.source, load, file))
        return cls(entries, description)

    @classmethod
    def from_adapter(cls, name: str, src: str | Path, splits: Sequence[str] | None = None,
                     **options: Any) -> UnlabeledSource:
        """The distinct images of a public dataset read by its adapter (``splits``: default all)."""
        from .adapters import load_dataset

        loaded = load_dataset(name, src, **options)
        missing = sorted(set(splits or ()) - set(loaded))
        if missing:
            raise DataError(f"{name} ({src}): no split(s) {missing}; it has {sorted(loaded)}")
        chosen = [loaded[s].items for s in (splits or loaded)]
        return cls.from_samples([e for items in chosen for e in items], f"{name} ({src}, labels ignored)")

    @classmethod
    def from_hf(cls, dataset: Any, image_column: str = "image") -> UnlabeledSource:
        """The rows of a `datasets.Dataset` whose ``image_column`` is an ``Image`` feature."""
        if image_column not in dataset.column_names:
            raise DataError(f"Hugging Face dataset has no column {image_column!r}; it has {dataset.column_names}")
        import datasets

        raw = dataset.select_columns([image_column]).cast_column(image_column, datasets.Image(decode=False))
        name = getattr(dataset, "info", None) and dataset.info.dataset_name or "datasets.Dataset"
        return cls(_Entry(f"{name}[{i}]", partial(_hf_image, raw, image_column, i),
                          encoded=partial(_hf_bytes, raw, image_column, i)) for i in range(len(raw)))

    # ------------------------------------------------------------------------- sequence
    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, index: int) -> UnlabeledImage: ...
    @overload
    def __getitem__(self, index: slice) -> UnlabeledSource: ...

    def __getitem__(self, index: int | slice) -> UnlabeledImage | UnlabeledSource:
        if isinstance(index, slice):
            return UnlabeledSource(self._entries[index], self.description)
        entry = self._entries[index]
        return UnlabeledImage(entry.load(), entry.source)

    def __add__(self, other: UnlabeledSource) -> UnlabeledSource:
        return UnlabeledSource(self._entries + other._entries, f"{self.description} + {other.description}")

    def __repr__(self) -> str:
        return f"UnlabeledSource({len(self)} images from {self.description})"

    @property
    def sources(self) -> list[str]:
        return [e.source for e in self._entries]

    # ------------------------------------------------------------------- held-out images
    def overlap(self, held_out: Iterable[Any] | Mapping[str, Iterable[Any]]) -> list[tuple[str, str]]:
        """``(unlabelled source, held-out file)`` for every image that is also held out: the same
        file (by real path), the same bytes under another name, or the same decoded pixels (an
        exact hash of the uint8 RGB array: a re-saved copy). ``held_out``: samples, lazy samples,
        paths, or a mapping of them (``TrainingData.val``). Only files whose byte size matches a
        held-out file's are hashed, and only images whose pixel size (from the header) matches a
        held-out image's are decoded; each held-out image is decoded at most once."""
        paths: dict[str, str] = {}
        pixels = _HeldOutPixels()
        for item in _flatten(held_out):
            file = _file_of(item)
            if file is not None and os.path.isfile(file):
                paths[os.path.realpath(file)] = file
            pixels.add(item, file)
        unhashed: dict[int, list[str]] = {}  # held-out files by byte size, hashed only when a size matches
        for real in paths:
            unhashed.setdefault(os.path.getsize(real), []).append(real)
        held_sizes = set(unhashed)
        digests: dict[str, str] = {}

        def same_bytes(data: bytes) -> str | None:
            for real in unhashed.pop(len(data), []):
                digests[_digest(Path(real).read_bytes())] = paths[real]
            return digests.get(_digest(data))

        found = []
        for entry in self._entries:
            match = None
            if entry.file is not None:
                real = os.path.realpath(entry.file)
                if real in paths:
                    found.append((entry.source, paths[real]))
                    continue
                if os.path.isfile(real) and os.path.getsize(real) in held_sizes:
                    match = same_bytes(Path(real).read_bytes())
            elif entry.encoded is not None and held_sizes:
                data = entry.encoded()
                match = same_bytes(data) if len(data) in held_sizes else None
            if match is None:
                match = pixels.match(entry)
            if match is not None:
                found.append((entry.source, match))
        return found

    def without(self, held_out: Iterable[Any] | Mapping[str, Iterable[Any]],
                on_overlap: Literal["error", "exclude"] = "error") -> UnlabeledSource:
        """This source minus the held-out images. ``on_overlap="error"`` (default) raises a
        `DataError` naming them; ``"exclude"`` drops them and logs how many."""
        if on_overlap not in ("error", "exclude"):
            raise ValueError(f"on_overlap={on_overlap!r}; expected 'error' or 'exclude'")
        found = self.overlap(held_out)
        if not found:
            return self
        if on_overlap == "error":
            listed = "; ".join(f"{a} (= {b})" for a, b in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            raise DataError(f"{self.description}: {len(found)} unlabelled image(s) are also validation/test images: "
                            f"{listed}{more}; remove them, or exclude them explicitly (on_overlap='exclude')")
        dropped = {a for a, _ in found}
        logger.warning("%s: excluded %d image(s) that are also validation/test images", self.description, len(found))
        return UnlabeledSource([e for e in self._entries if e.source not in dropped], self.description)


def read_rgb(path: str) -> np.ndarray:
    """An image file as uint8 H×W×3; errors name the file."""
    try:
        return to_rgb_uint8(read_image(path), name=path)
    except FileNotFoundError:
        raise MissingFileError(f"image file not found: {path}") from None
    except ImageFormatError as err:
        raise DataError(str(err)) from None


def _image_of(item: Sample | LazySample) -> np.ndarray:
    return (item.load() if isinstance(item, LazySample) else item).image


def _hf_image(dataset: Any, column: str, index: int) -> np.ndarray:
    from io import BytesIO

    from ..image.io import open_image

    value = dataset[index][column]
    where = f"dataset row {index}"
    try:
        image = open_image(BytesIO(value["bytes"]), "image bytes") if value.get("bytes") else read_image(value["path"])
        return to_rgb_uint8(image, name=where)
    except (OSError, ImageFormatError) as err:
        raise DataError(f"{where}: {err}") from None


def _hf_bytes(dataset: Any, column: str, index: int) -> bytes:
    value = dataset[index][column]
    if value.get("bytes"):
        return value["bytes"]
    return Path(value["path"]).read_bytes() if value.get("path") and os.path.isfile(value["path"]) else b""


def _flatten(held_out: Iterable[Any] | Mapping[str, Iterable[Any]]) -> Iterable[Any]:
    groups = held_out.values() if isinstance(held_out, Mapping) else [held_out]
    for group in groups:
        yield from (group.items if isinstance(group, SampleCollection) else group)


def _file_of(item: Any) -> str | None:
    if isinstance(item, (str, Path)):
        return str(item)
    if isinstance(item, LazySample):
        return item.files[0] if item.files else item.source
    if isinstance(item, Sample):
        return item.source or None
    raise TypeError(f"held-out item of type {type(item).__name__}; expected a path, a Sample or a LazySample")


class _HeldOutPixels:
    """Held-out images by pixel size (H, W), decoded and hashed only when an unlabelled image of
    that size comes along (each at most once)."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, int], list[tuple[str, Callable[[], np.ndarray]]]] = {}
        self._digests: dict[str, str] = {}  # pixel digest -> the held-out image's name
        self._decoded: set[tuple[int, int]] = set()  # the sizes whose held-out images are hashed

    def add(self, item: Any, file: str | None) -> None:
        if isinstance(item, Sample):
            size, load, name = item.image.shape[:2], partial(_image_of, item), file or item.source or "held-out sample"
        elif file is not None and os.path.isfile(file):
            size, load, name = _header_size(file), partial(read_rgb, file), file
        else:
            return  # no pixels to compare without decoding (a lazy sample without a file)
        if size is not None:
            self._pending.setdefault(tuple(size), []).append((name, load))

    def match(self, entry: _Entry) -> str | None:
        """The held-out image with ``entry``'s exact pixels, if any (unreadable images match nothing:
        the training loader reports them)."""
        if not self._pending and not self._digests:
            return None
        size = _header_size(entry.file) if entry.file is not None else _encoded_size(entry)
        if size is None or (size not in self._pending and size not in self._decoded):
            return None
        for name, load in self._pending.pop(size, []):
            digest = _pixel_digest(load)
            if digest is not None:
                self._digests.setdefault(digest, name)
        self._decoded.add(size)
        digest = _pixel_digest(entry.load)
        return self._digests.get(digest) if digest is not None else None


def _header_size(file: str) -> tuple[int, int] | None:
    from .mask_io import image_size

    try:
        return image_size(file)
    except (DataError, ImageFormatError, OSError):
        return None


def _encoded_size(entry: _Entry) -> tuple[int, int] | None:
    if entry.encoded is None:
        return None
    from io import BytesIO

    from ..image.io import open_image

    try:
        with open_image(BytesIO(entry.encoded()), entry.source) as image:
            return image.size[1], image.size[0]
    except (DataError, ImageFormatError, OSError):
        return None


def _pixel_digest(load: Callable[[], np.ndarray]) -> str | None:
    """A BLAKE2 hash of the decoded uint8 RGB pixels and their shape, or None if unreadable."""
    try:
        image = np.ascontiguousarray(load())
    except (DataError, ImageFormatError, OSError):
        return None
    shape = "x".join(str(n) for n in image.shape)
    digest = hashlib.blake2b(f"{shape}|{image.dtype}|".encode(), digest_size=20)
    digest.update(image.tobytes())
    return digest.hexdigest()


def _first_of_each_content(entries: list[_Entry]) -> list[_Entry]:
    """``entries`` (each with a file) without later copies of the same bytes; only files whose size
    another file shares are read."""
    by_size: dict[int, list[int]] = {}
    for i, entry in enumerate(entries):
        by_size.setdefault(os.path.getsize(entry.file), []).append(i)
    copies: set[int] = set()
    for indices in by_size.values():
        if len(indices) > 1:
            first_of: dict[str, int] = {}
            for i in indices:
                digest = _digest(Path(entries[i].file).read_bytes())
                if digest in first_of:
                    copies.add(i)
                else:
                    first_of[digest] = i
    return [e for i, e in enumerate(entries) if i not in copies]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


__all__ = ["IMAGE_SUFFIXES", "UnlabeledImage", "UnlabeledSource", "read_rgb"]
