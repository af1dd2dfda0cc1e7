"""``--data`` specs of the pretrain recipe as one `UnlabeledSource`.

- ``PATH``: every image under a folder (any layout);
- ``fmc:PATH``: the distinct images of an FMC_UIA root (labels ignored);
- ``NAME:PATH``: a public dataset through its adapter (hc18, african_planes, busi, ...), its
  ``train`` split only, so validation and test images are never pretrained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...data.errors import DataError
from ...data.unlabeled import UnlabeledSource


def unlabeled_source(spec: str, flag: str = "--data") -> UnlabeledSource:
    name, sep, path = spec.partition(":")
    if not sep or Path(spec).exists() or len(name) == 1:  # a plain path (or a Windows drive letter)
        return UnlabeledSource.from_folder(spec)
    if name == "fmc":
        return UnlabeledSource.from_fmc(path)
    from ...data.adapters import ADAPTERS

    if name not in ADAPTERS:
        raise DataError(f"{flag} {spec}: unknown source {name!r}; expected a folder, fmc:ROOT or NAME:PATH with "
                        f"NAME one of {sorted(ADAPTERS)}")
    return UnlabeledSource.from_adapter(name, path, splits=["train"])


def unlabeled_sources(specs: Sequence[str], flag: str = "--data") -> UnlabeledSource:
    """All ``specs`` together; an error names a spec that holds no image."""
    if not specs:
        raise DataError(f"{flag}: no unlabelled source given")
    total = None
    for spec in specs:
        source = unlabeled_source(spec, flag)
        if len(source) == 0:
            raise DataError(f"{flag} {spec}: no images in it ({source.description})")
        total = source if total is None else total + source
    return total
