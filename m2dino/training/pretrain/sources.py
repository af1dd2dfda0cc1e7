"""``--data`` specs of the pretrain recipe as one `UnlabeledSource`.

- ``PATH``: every image under a folder (any layout);
- ``fmc:PATH``: the distinct images of an FMC_UIA root (labels ignored);
- ``NAME:PATH``: a public dataset through its adapter (hc18, african_planes, busi, ...), its
  ``train`` split only, so validation and test images are never pretrained on.
"""

from __future__ import annotations

import os
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


def source_folder(spec: str) -> Path:
    """The folder a ``--data`` / ``--unlabeled`` spec reads (``PATH``, ``fmc:PATH``, ``NAME:PATH``)."""
    name, sep, path = spec.partition(":")
    return Path(spec if not sep or Path(spec).exists() or len(name) == 1 else path)


def check_output_outside(output_dir: str | Path, specs: Sequence[str], flag: str = "--data") -> None:
    """A run's output folder must not lie inside (or be) a folder it reads images from: the next run
    would take its pictures (loss_curves.png, example.png, best/...) for scans."""
    output = Path(os.path.realpath(output_dir))
    for spec in specs:
        folder = Path(os.path.realpath(source_folder(spec)))
        if output == folder or folder in output.parents:
            raise DataError(f"--output-dir {output_dir} is inside {flag} {spec}: the next run would read the "
                            "run's own images (curves, card pictures) as training images; choose an output folder "
                            "outside it")
