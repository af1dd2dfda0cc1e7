"""The already-labelled images, given as a folder of images or as a list of pool files.

- A **folder** holds the labelled images themselves, inside the pool folder or elsewhere. Pool
  files that are the same file (or hold the same bytes) are not candidates; the other labelled
  images are read for their features (EGAD and core-set compare against them).
- A **list** (a text file, one path per line, ``#`` comments; or a CSV whose ``image`` column, or
  else first column, holds the paths, e.g. an earlier ``picked.csv``) names pool files that are
  already labelled. Each path is taken as given, else relative to the pool folder, else relative
  to the list's folder; a name that is not a pool file is an error naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..data.errors import DataError, MissingFileError
from ..data.image_list import read_image_list
from ..data.unlabeled import UnlabeledSource

LIST_SHOWN = 5  # names listed in an error; the rest are counted


@dataclass(frozen=True)
class LabelledSet:
    in_pool: frozenset[int]          # pool indices already labelled: never candidates
    outside: UnlabeledSource | None  # labelled images that are not pool files


def _real(path: str | Path) -> str:
    return os.path.realpath(path)


def _resolve(entry: str, pool_root: Path, list_dir: Path) -> str:
    for candidate in (Path(entry), pool_root / entry, list_dir / entry):
        if candidate.is_file():
            return _real(candidate)
    return _real(entry)


def read_labelled(src: str | Path, pool: UnlabeledSource, pool_root: str | Path) -> LabelledSet:
    """The labelled images ``src`` (a folder or a list file) matched against ``pool``."""
    src, pool_root = Path(src), Path(pool_root)
    by_path = {_real(source): i for i, source in enumerate(pool.sources)}
    if src.is_dir():
        folder = UnlabeledSource.from_folder(src)
        # The same file, or the same bytes under another name, counts as that pool image.
        same = dict(folder.overlap(pool.sources))
        outside = [folder[i:i + 1] for i, s in enumerate(folder.sources) if s not in same]
        return LabelledSet(frozenset(by_path[_real(f)] for f in same.values()),
                           sum(outside[1:], outside[0]) if outside else None)
    if not src.is_file():
        raise MissingFileError(f"labelled list or folder not found: {src}")
    entries = read_image_list(src)
    if not entries:
        raise DataError(f"{src}: the labelled list names no images")
    resolved = {entry: _resolve(entry, pool_root, src.parent) for entry in entries}
    absent = [entry for entry, real in resolved.items() if real not in by_path]
    if absent:
        more = f" and {len(absent) - LIST_SHOWN} more" if len(absent) > LIST_SHOWN else ""
        raise DataError(f"{src}: {len(absent)} labelled image(s) are not in the pool {pool_root}: "
                        f"{', '.join(absent[:LIST_SHOWN])}{more}")
    return LabelledSet(frozenset(by_path[real] for real in resolved.values()), None)


__all__ = ["LabelledSet", "read_labelled"]
