"""What a resized sample is, once stored: its identity, the stamp of its source files, and its
pixels and label as bytes plus a small JSON record. The sharded disk cache (`m2dino.data.cache`)
and the in-memory store (`m2dino.data.memory_cache`) both keep samples this way.

* The **identity** of an entry names what it is read from and how: its task, the paths of every
  file it reads, and its loader (function and arguments: the index-time label, adapter options).
  A changed CSV label or adapter option is a new identity.
* The **stamp** is each of those files' size and modification time: the same identity with another
  stamp is a changed source, and the file that changed can be named.
* The **bytes** are the resized image (uint8 H×W×3) and, for a label on the pixel grid (a mask),
  the label (uint8 H×W). Every other label (a class, boxes, keypoints, a measurement), the original
  size, the source and the meta go into the record, where JSON keeps numbers exact.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from typing import Any

import numpy as np

from .collection import LazySample
from .errors import DataError
from .sample import Sample, meta_to_json

IDENTITY_VERSION = 2  # bump when what a loader computes changes meaning (old entries then stop matching)


def checksum(*chunks: bytes | memoryview | np.ndarray) -> str:
    """BLAKE2b-128 of the chunks in order, as ``blake2b:<hex>``."""
    digest = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        digest.update(chunk)
    return "blake2b:" + digest.hexdigest()


def entry_identity(entry: Sample | LazySample) -> str | None:
    """What ``entry`` is (task, files, loader) as a 40-hex key, or None when it cannot be cached
    (an in-memory sample; a lazy sample without ``files`` or with an unpicklable-looking loader)."""
    if not isinstance(entry, LazySample) or not entry.files:
        return None
    loader = _loader_fingerprint(entry.load)
    if loader is None:
        return None
    text = json.dumps([IDENTITY_VERSION, entry.task, [str(f) for f in entry.files], loader], default=_stable)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def source_stamp(entry: LazySample) -> list[list[int]]:
    """Size in bytes and modification time (ns) of each of ``entry.files``."""
    stamp = []
    for file in entry.files:
        try:
            stat = os.stat(file)
        except OSError as err:
            raise DataError(f"{file}: cannot read the source of {entry.source} ({err.strerror or err})") from None
        stamp.append([stat.st_size, stat.st_mtime_ns])
    return stamp


def changed_file(entry: LazySample, recorded: list[list[int]]) -> str | None:
    """The first of ``entry.files`` whose size or modification time differs from ``recorded``."""
    for file, now, then in zip(entry.files, source_stamp(entry), recorded):
        if list(now) != list(then):
            return str(file)
    return None


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


# ---------------------------------------------------------------------------------------- encoding
def is_pixel_label(sample: Sample) -> bool:
    """Whether the label is a uint8 grid the size of the image (a mask): it is stored as bytes."""
    label = sample.label
    return isinstance(label, np.ndarray) and label.dtype == np.uint8 and label.shape == sample.size


def image_nbytes(image_size: tuple[int, int]) -> int:
    return image_size[0] * image_size[1] * 3


def label_record(sample: Sample) -> dict:
    """The record's ``label`` for a label that is not on the pixel grid (exact in JSON: Python
    floats print their shortest round-tripping form)."""
    label = sample.label
    if isinstance(label, np.ndarray):
        return {"dtype": label.dtype.str, "shape": list(label.shape), "values": label.ravel().tolist()}
    return {"value": label.item() if isinstance(label, np.generic) else label}


def describe(sample: Sample) -> dict:
    """Everything of a resized sample except its bytes."""
    return {"task": sample.task, "source": sample.source, "original_size": list(sample.original_size),
            "meta": json.loads(meta_to_json(sample.meta))}


def decode(record: dict, image: np.ndarray, mask: np.ndarray | None) -> Sample:
    """The `Sample` a record and its bytes (viewed as H×W×3 and H×W uint8) describe."""
    if mask is not None:
        label: Any = mask
    elif "value" in record["label"]:
        label = record["label"]["value"]
    else:
        spec = record["label"]
        label = np.asarray(spec["values"], dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
    return Sample(image, record["task"], label, tuple(record["original_size"]), record["source"],
                  dict(record["meta"]))
