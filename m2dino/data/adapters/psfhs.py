"""PSFHS (Chen et al. 2024, MICCAI 2023 challenge; Zenodo 10969427), intrapartum transperineal
ultrasound, published layout::

    <src>/image_mha/03744.mha   DimSize 256 256 3, uint8: the gray image stored as three identical slices
    <src>/label_mha/03744.mha   DimSize 256 256, uint8: 0 background, 1 pubic symphysis, 2 fetal head

Gives ``head_symphysis_multi`` samples (its class order is PSFHS's label values). The three
slices of an image must be equal (a trap: they are a gray image stored three times, not RGB
channels or a volume); they are checked when the sample is decoded. The files are read by
`m2dino.data.adapters.mha.read_mha`. PSFHS gives no patient ids, so the images are split with
`SPLIT_SEED` and `SPLIT_FRACTIONS`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from ..collection import LazySample, SampleCollection
from ..errors import DataError
from ..sample import Sample
from .common import require_dir, split_groups
from .mha import read_mha

NAME = "psfhs"
TASKS = ("head_symphysis_multi",)
SPLIT_SEED = 0
SPLIT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
LAYOUT = "PSFHS layout: image_mha/<id>.mha and label_mha/<id>.mha"


def load(src: str | Path, seed: int = SPLIT_SEED,
         fractions: dict[str, float] | None = None) -> dict[str, SampleCollection]:
    """``{"train", "val", "test"}`` -> lazy ``head_symphysis_multi`` samples, sorted by id."""
    src = Path(src)
    images = {p.stem: p for p in sorted(require_dir(src / "image_mha", LAYOUT).glob("*.mha"))}
    labels = {p.stem: p for p in sorted(require_dir(src / "label_mha", LAYOUT).glob("*.mha"))}
    for missing, here, there in ((sorted(images.keys() - labels.keys()), "image_mha", "label_mha"),
                                 (sorted(labels.keys() - images.keys()), "label_mha", "image_mha")):
        if missing:
            raise DataError(f"{src / here}: {len(missing)} file(s) without a partner in {src / there} "
                            f"(e.g. {', '.join(m + '.mha' for m in missing[:3])}); expected pairs with the same id")
    if not images:
        raise DataError(f"{src / 'image_mha'}: empty dataset (no .mha files)")
    fractions = fractions or SPLIT_FRACTIONS
    split_of = split_groups(list(images), fractions, seed)
    splits: dict[str, list[LazySample]] = {split: [] for split in fractions}
    for name, image_file in images.items():
        split = split_of[name]
        meta = {"dataset": NAME, "split": split, "name": name}
        splits[split].append(LazySample("head_symphysis_multi", str(image_file),
                                        partial(_sample, image_file, labels[name], meta), meta,
                                        files=(str(image_file), str(labels[name]))))
    return {split: SampleCollection(items) for split, items in splits.items()}


def _sample(image_file: Path, label_file: Path, meta: dict) -> Sample:
    volume = read_mha(image_file)
    if volume.ndim == 3:
        if not all(np.array_equal(volume[0], s) for s in volume[1:]):
            raise DataError(f"{image_file}: its {len(volume)} slices differ; expected one gray image "
                            "stored as identical slices")
        volume = volume[0]
    if volume.ndim != 2 or volume.dtype != np.uint8:
        raise DataError(f"{image_file}: array of shape {volume.shape} and type {volume.dtype}; expected uint8 "
                        "H×W (or identical slices of it)")
    mask = read_mha(label_file)
    if mask.shape != volume.shape:
        raise DataError(f"{label_file}: label map is {'×'.join(map(str, mask.shape))} but image {image_file} is "
                        f"{volume.shape[0]}×{volume.shape[1]}; expected the same H×W")
    try:
        return Sample(volume, "head_symphysis_multi", mask, source=str(image_file),
                      meta={**meta, "mask_file": str(label_file)})
    except DataError as err:
        raise DataError(f"{label_file}: {err}") from None
