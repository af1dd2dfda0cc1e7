"""`SampleCollection`: a list-like sequence of samples that decodes each one only when it is accessed.

Adapters and the FMC reader index thousands of images; decoding them all up front would take
minutes and gigabytes. A collection holds `LazySample`s (task, source and cheap metadata plus a
picklable loader) and turns one into a `Sample` on ``collection[i]``, so it can back a DataLoader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from .sample import Sample


@dataclass(frozen=True)
class LazySample:
    """A sample not decoded yet: ``load()`` reads it. ``load`` must be picklable (a module-level
    function, a `functools.partial` of one, or a bound method) so DataLoader workers can use it.

    ``files``: every file ``load()`` reads (image, mask, annotation); the resize cache keys an entry
    on their size and modification time, so a sample without ``files`` is never cached. ``label``:
    the label when the index already knows it (a class, a box, a measurement), so statistics over
    labels need not decode images; None when it comes from the pixels (masks) or is unknown.
    """

    task: str
    source: str
    load: Callable[[], Sample]
    meta: Mapping[str, Any] = field(default_factory=dict)
    files: tuple[str, ...] = ()
    label: Any = None


def image_key(item: Sample | LazySample) -> str:
    """What identifies an item's image across tasks. An FMC root written by `m2dino data
    build-public` holds one copy of an image per task folder and names the original in its CSV
    ``meta`` (``dataset`` and ``name``); elsewhere the source path is the image."""
    if "dataset" in item.meta and "name" in item.meta:
        return f"{item.meta['dataset']}/{item.meta['name']}"
    return item.source


class SampleCollection(Sequence[Sample]):
    """Samples and lazy samples behind one sequence interface; ``[i]`` always returns a `Sample`."""

    def __init__(self, items: Iterable[Sample | LazySample] = ()) -> None:
        self._items: list[Sample | LazySample] = list(items)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Sample: ...
    @overload
    def __getitem__(self, index: slice) -> "SampleCollection": ...

    def __getitem__(self, index: int | slice) -> Sample | "SampleCollection":
        if isinstance(index, slice):
            return SampleCollection(self._items[index])
        item = self._items[index]
        return item.load() if isinstance(item, LazySample) else item

    def entry(self, index: int) -> Sample | LazySample:
        """Entry ``index`` as stored: a `LazySample` is not decoded."""
        return self._items[index]

    def __add__(self, other: Iterable[Sample | LazySample]) -> "SampleCollection":
        items = other._items if isinstance(other, SampleCollection) else list(other)
        return SampleCollection(self._items + items)

    def __repr__(self) -> str:
        counts = ", ".join(f"{task}: {n}" for task, n in Counter(self.tasks()).items())
        return f"SampleCollection({len(self)} samples; {counts})"

    @property
    def items(self) -> list[Sample | LazySample]:
        """The undecoded entries (``task``, ``source`` and ``meta`` are readable without decoding)."""
        return list(self._items)

    def tasks(self) -> list[str]:
        """The task of every entry, in order, without decoding anything."""
        return [item.task for item in self._items]

    def by_task(self) -> dict[str, "SampleCollection"]:
        groups: dict[str, list[Sample | LazySample]] = {}
        for item in self._items:
            groups.setdefault(item.task, []).append(item)
        return {task: SampleCollection(items) for task, items in groups.items()}

    def filter(self, keep: Callable[[Sample | LazySample], bool]) -> "SampleCollection":
        """Entries for which ``keep(entry)`` is true; ``keep`` sees undecoded entries."""
        return SampleCollection(item for item in self._items if keep(item))

    def materialize(self) -> list[Sample]:
        """Decode everything into a plain list."""
        return [self[i] for i in range(len(self))]

    def labels(self) -> list[Any]:
        """Every entry's label, decoding only the entries whose index does not know it."""
        return [item.label if isinstance(item, LazySample) and item.label is not None else self[i].label
                for i, item in enumerate(self._items)]


def as_collection(samples: Iterable[Sample | LazySample]) -> SampleCollection:
    """``samples`` as a `SampleCollection` (the same object if it already is one), without decoding."""
    return samples if isinstance(samples, SampleCollection) else SampleCollection(samples)
