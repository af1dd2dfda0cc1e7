"""Helpers shared by the public-dataset adapters: layout checks, patient-level splits, loaders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ...image import ImageFormatError, read_image, to_rgb_uint8
from ..errors import DataError, MissingFileError
from ..mask_io import read_mask
from ..sample import Label, Sample

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def require_dir(path: Path, layout: str) -> Path:
    if not path.is_dir():
        raise MissingFileError(f"folder not found: {path}; expected the {layout}")
    return path


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder (by suffix, any case), sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def split_groups(groups: Sequence[str], fractions: Mapping[str, float], seed: int) -> dict[str, str]:
    """Assign every distinct group (a patient) to one split, deterministically.

    The sorted distinct groups are permuted with ``numpy.random.default_rng(seed)`` and cut in
    order of ``fractions`` (e.g. train 0.8, val 0.1, test 0.1) with largest-remainder rounding,
    so the counts are exact and all images of a patient land in the same split.
    """
    total = sum(fractions.values())
    if not fractions or total <= 0 or min(fractions.values()) < 0:
        raise ValueError(f"split fractions {dict(fractions)}: expected non-negative numbers with a positive sum")
    unique = sorted(set(groups))
    quotas = np.array([f / total for f in fractions.values()]) * len(unique)
    counts = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - counts), kind="stable")[: len(unique) - counts.sum()]:
        counts[i] += 1
    order = np.random.default_rng(seed).permutation(len(unique))
    assignment, start = {}, 0
    for split, count in zip(fractions, counts):
        for i in order[start:start + count]:
            assignment[unique[i]] = split
        start += count
    return assignment


def load_image(path: Path) -> np.ndarray:
    """uint8 H×W×3 (gray replicated, palette expanded); errors name the file."""
    try:
        return to_rgb_uint8(read_image(path), name=str(path))
    except FileNotFoundError:
        raise MissingFileError(f"image file not found: {path}") from None
    except ImageFormatError as err:
        raise DataError(str(err)) from None


def labelled_sample(image_file: Path, task: str, label: Label, meta: dict[str, Any]) -> Sample:
    """A sample whose label is known without decoding (class, boxes, keypoints, value)."""
    return Sample(load_image(image_file), task, label, source=str(image_file), meta=dict(meta))


def masked_sample(image_file: Path, mask_file: Path, task: str, meta: dict[str, Any], binary: bool = False,
                  resize: bool = False) -> Sample:
    """A segmentation sample. ``binary`` maps every non-zero mask value to class 1 (masks saved as
    0/255); ``resize`` resizes a mask of another size to the image (nearest neighbour), which is
    otherwise an error."""
    image = load_image(image_file)
    mask = read_mask(mask_file)
    if binary:
        mask = (mask > 0).astype(np.uint8)
    if mask.shape != image.shape[:2]:
        if not resize:
            raise DataError(f"{mask_file}: mask is {mask.shape[0]}×{mask.shape[1]} but image {image_file} is "
                            f"{image.shape[0]}×{image.shape[1]} (H×W); expected the same size "
                            "(pass resize_masks=True to resize masks to their images)")
        size = (image.shape[1], image.shape[0])
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    try:
        return Sample(image, task, mask, source=str(image_file), meta={**meta, "mask_file": str(mask_file)})
    except DataError as err:
        raise DataError(f"{mask_file}: {err}") from None
