"""`Sample`: one image, its task and the label of that task's type, validated on construction."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..image import ImageFormatError, to_rgb_uint8
from ..tasks import LabelError, TaskSpec, get_task
from .errors import DataError

Label = Union[np.ndarray, int, float]


@dataclass
class Sample:
    """An image (uint8 H×W×3) with the label of its task, in the image's own pixel coordinates.

    ``label`` by ``get_task(task).label_kind`` (`m2dino.tasks.label_kinds`): ``mask`` uint8 H×W of
    class indices; ``class`` int; ``boxes`` float n×4 ``(x_min, y_min, x_max, y_max)``; ``keypoints``
    float K×2 ``(x, y)`` in the task's point order; ``scalar`` float. Coordinates are continuous pixel
    coordinates (0 = left/top edge of the first
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
    try:
        return spec.label_kind.validate(label, image_size, where)
    except LabelError as err:
        raise DataError(str(err)) from None


def meta_to_json(meta: dict[str, Any]) -> str:
    """``meta`` as JSON (numpy values as plain numbers and lists, anything else as its string)."""
    return json.dumps(meta, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
