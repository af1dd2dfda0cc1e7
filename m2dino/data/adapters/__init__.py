"""Public ultrasound datasets in their own layouts, by name: load them as samples or convert them
into the FMC_UIA layout (``m2dino data convert NAME SRC DST``)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from ..collection import SampleCollection
from ..errors import DataError
from ..fmc import write_fmc
from . import african_planes, busi, ddti, folder, hc18, mmotu, pocus, psfhs, usgra

ADAPTERS: dict[str, ModuleType] = {module.NAME: module for module in (hc18, african_planes, usgra, busi, psfhs, pocus,
                                                                      mmotu, ddti, folder)}


def list_adapters() -> list[str]:
    return list(ADAPTERS)


def get_adapter(name: str) -> ModuleType:
    """The adapter module (its docstring describes the layout, its ``load`` the options)."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise DataError(f"unknown dataset adapter {name!r}; known: {', '.join(ADAPTERS)}") from None


def load_dataset(name: str, src: str | Path, **options: Any) -> dict[str, SampleCollection]:
    """``{split: samples}`` of dataset ``name`` read from ``src`` in its original layout; samples
    are decoded when accessed. Options are the adapter's ``load`` keyword arguments."""
    return get_adapter(name).load(src, **options)


def convert(name: str, src: str | Path, dst: str | Path, overwrite: bool = False, progress: bool = True,
            **options: Any) -> dict[str, Path]:
    """Write dataset ``name`` into the FMC layout, one root per split: ``dst/<split>/csv_files/...``."""
    roots = {}
    for split, samples in load_dataset(name, src, **options).items():
        if not len(samples):
            continue  # e.g. a split fraction of 0
        root = Path(dst) / split
        write_fmc(samples, root, split_name=split, overwrite=overwrite, progress=progress)
        roots[split] = root
    return roots


__all__ = ["ADAPTERS", "convert", "get_adapter", "list_adapters", "load_dataset"]
