"""`Sample`: one image, its task and the label of that task's type, validated on construction."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..image import ImageFormatError, to_rgb_uint8
from ..tasks import TaskSpec, get_task
from .errors import DataError

Label = Union[np.ndarray, int, float]


@dataclass
class Sample:
    """An image (uint8 H×W×3) with the label of its task, in the image's own pixel coordinates.

    ``label`` by ``get_task(task).label_kind``: ``mask`` uint8 H×W of class indices; ``class`` int;
    ``boxes`` float n×4 ``(x_min, y_min, x_max, y_max)``; ``keypoints`` float K×2 ``(x, y)``;
    ``scalar`` float. Coordinates are continuous pixel coordinates (0 = left/top edge of the first
    pixel). ``original_size`` is the (H, W) of the image as read from disk; it stays unchanged when
    a transform resizes ``image``. Gray (H×W or H×W×1) images are replicated to three channels;
    RGBA and 16-bit images are rejected: convert them explicitly (`m2dino.image.to_rgb_uint8`).
    """

    image: np.ndarray
    task: str
    label: Label
    original_size: tuple[int, int] | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or f"{self.task} sample"
        spec = get_task(self.task)
        try:
            self.image = to_rgb_uint8(self.image, name=where)
        except ImageFormatError as err:
            raise DataError(str(err)) from None
        height, width = self.image.shape[:2]
        if self.original_size is None:
            self.original_size = (height, width)
        else:
            size = tuple(int(v) for v in self.original_size)
            if len(size) != 2 or min(size) <= 0:
                raise DataError(f"{where}: original_size {self.original_size!r}; expected (height, width) > 0")
            self.original_size = size
        self.label = validate_label(spec, self.label, (height, width), where)

    @property
    def spec(self) -> TaskSpec:
        return get_task(self.task)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of ``image`` as it is now (after transforms, the model-input size)."""
        return self.image.shape[0], self.image.shape[1]

    def replace(self, **changes: Any) -> "Sample":
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)


def validate_label(spec: TaskSpec, label: Any, image_size: tuple[int, int], where: str) -> Label:
    """``label`` checked against ``spec`` and converted to its canonical type (see `Sample`)."""
    kind = spec.label_kind
    prefix = f"{where}: task {spec.id!r} ({kind})"
    if kind == "mask":
        return _validate_mask(spec, label, image_size, prefix)
    if kind == "class":
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise DataError(f"{prefix}: label {label!r} of type {type(label).__name__}; expected an int class index")
        if not 0 <= int(label) < spec.num_classes:
            raise DataError(f"{prefix}: class {int(label)} out of range; expected 0..{spec.num_classes - 1}")
        return int(label)
    if kind == "scalar":
        if isinstance(label, (bool, np.bool_, str, bytes)) or not np.isscalar(label) or not np.isfinite(label):
            raise DataError(f"{prefix}: value {label!r}; expected a finite number ({spec.scalar_unit})")
        return float(label)
    array = _float_array(label, prefix)
    if kind == "boxes":
        if array.shape == (4,):
            array = array[None]
        if array.ndim != 2 or array.shape[1] != 4:
            raise DataError(f"{prefix}: boxes of shape {array.shape}; expected n×4 (x_min, y_min, x_max, y_max)")
        if len(array) > spec.max_boxes:
            raise DataError(f"{prefix}: {len(array)} boxes; the task allows at most {spec.max_boxes}")
        if np.any(array[:, 2] < array[:, 0]) or np.any(array[:, 3] < array[:, 1]):
            raise DataError(f"{prefix}: box {array.tolist()} has x_max < x_min or y_max < y_min")
        return array
    if array.shape != (spec.num_keypoints, 2):
        raise DataError(f"{prefix}: keypoints of shape {array.shape}; expected {spec.num_keypoints}×2 (x, y)")
    return array


def _validate_mask(spec: TaskSpec, label: Any, image_size: tuple[int, int], prefix: str) -> np.ndarray:
    mask = np.asarray(label)
    if mask.ndim != 2:
        raise DataError(f"{prefix}: mask of shape {mask.shape}; expected a 2-D H×W array of class indices")
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.dtype.kind not in "ui":
        raise DataError(f"{prefix}: mask of dtype {mask.dtype}; expected integer class indices")
    if mask.shape != tuple(image_size):
        raise DataError(f"{prefix}: mask of size {mask.shape[0]}×{mask.shape[1]} but the image is "
                        f"{image_size[0]}×{image_size[1]} (H×W); expected the same size")
    if mask.size and (mask.min() < 0 or mask.max() >= spec.num_classes):
        bad = sorted(int(v) for v in np.unique(mask) if not 0 <= v < spec.num_classes)
        raise DataError(f"{prefix}: mask values {bad[:10]} out of range; expected class indices "
                        f"0..{spec.num_classes - 1}")
    return np.ascontiguousarray(mask, dtype=np.uint8)


def _float_array(label: Any, prefix: str) -> np.ndarray:
    try:
        array = np.asarray(label, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{prefix}: label {label!r} is not numeric") from None
    if not np.all(np.isfinite(array)):
        raise DataError(f"{prefix}: label {array.tolist()} holds NaN or infinite values")
    return array


def meta_to_json(meta: dict[str, Any]) -> str:
    """``meta`` as JSON (numpy values as plain numbers and lists, anything else as its string)."""
    return json.dumps(meta, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
