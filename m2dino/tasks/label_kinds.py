"""The five label kinds (mask, class, boxes, keypoints, scalar) as objects: the one home of
everything that differs by what a task's label is.

Each kind, bound to a `TaskSpec`, owns:

- ``validate``: any accepted input -> the canonical label (or `LabelError` naming where and what);
- geometry: ``resize`` (original pixels -> the model's grid through a `ResizeGeometry`), ``warp``
  (through an augmentation's 3×3 affine, on the model's grid) and ``to_original`` (back);
- its CSV columns in the FMC_UIA layout and ``parse_cells`` / ``format_cells``;
- its Hugging Face ``datasets`` feature and conversions;
- ``collate``: a batch of labels as numpy arrays (the torch side only wraps them).

Canonical labels (coordinates are continuous pixels: 0 is the left/top edge of the first pixel):
mask uint8 H×W of class indices; class int; boxes float64 n×4 (x_min, y_min, x_max, y_max);
keypoints float64 K×2 (x, y), in the spec's `point_order`; scalar float (in ``scalar_unit``).

The label kind is the code's name for what a task predicts. Files keep older names, so this is
where the vocabularies meet (``tests/evaluation/test_kind_tables.py`` checks the table)::

    label kind  TaskType (tasks.json, CSVs)   metrics.json section  submission file                   head
    mask        segmentation                  segmentation          one PNG per image                 SegmentationHead
    class       classification                classification        classification_predictions.json   ClassificationHead
    boxes       detection                     detection             detection_predictions.json        DetectionHead
    keypoints   regression                    regression            regression_predictions.json       KeypointHead
    scalar      regression + scalar_unit      measurement           measurement_predictions.json      ScalarHead

Each kind also names its ``headline_metrics``: the metrics a task of that kind is judged and
summarised by (`TaskSpec.metrics`, the evaluation's summary and reports all read them here).

numpy and PIL only: data code, the evaluation and the models all build on this module.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, ClassVar, Protocol, Union

import numpy as np
from PIL import Image

from ..image import ResizeGeometry, resize_mask
from .task_type import TaskType

Label = Union[np.ndarray, int, float]
BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
# Not in the challenge's layout: scalar measurements (e.g. head circumference) need a column.
SCALAR_COLUMN = "value"


class LabelError(ValueError):
    """A label that does not fit its task; the message says where and what was expected."""


def point_column(k: int) -> str:
    """Column of the k-th keypoint (1-based), a JSON ``[x, y]``."""
    return f"point_{k}_xy"


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (…×2, x y) through a 3×3 affine map."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]


class LabelledTask(Protocol):
    """What a label kind reads of its task. `TaskSpec` has all of it; a protocol because `TaskSpec`
    is built on the kinds (its ``label_kind`` and ``metrics`` come from here), one layer up."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> TaskType: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def class_names(self) -> tuple[str, ...]: ...
    @property
    def max_boxes(self) -> int: ...
    @property
    def scalar_unit(self) -> str | None: ...
    @property
    def num_keypoints(self) -> int: ...
    @property
    def interchangeable_points(self) -> bool: ...


class LabelKind:
    """The behaviour shared by every label of one kind, for one task (``self.spec``)."""

    name: ClassVar[str]
    task_type: ClassVar[TaskType]              # what files call tasks of this kind
    headline_metrics: ClassVar[tuple[str, ...]]  # what a task of this kind is judged by
    stored_as_file: ClassVar[bool] = False   # the FMC layout keeps the label in its own file (masks)
    rows_per_image: ClassVar[str] = "one"    # "many": a CSV gives one row per object (boxes)

    def __init__(self, spec: LabelledTask) -> None:
        self.spec = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.id!r})"

    def _prefix(self, where: str) -> str:
        return f"{where}: task {self.spec.id!r} ({self.name})"

    # ------------------------------------------------------------------ validation
    def validate(self, label: Any, image_size: tuple[int, int], where: str) -> Label:
        raise NotImplementedError

    def _float_array(self, label: Any, where: str) -> np.ndarray:
        try:
            array = np.asarray(label, dtype=np.float64)
        except (TypeError, ValueError):
            raise LabelError(f"{self._prefix(where)}: label {label!r} is not numeric") from None
        if not np.all(np.isfinite(array)):
            raise LabelError(f"{self._prefix(where)}: label {array.tolist()} holds NaN or infinite values")
        return array

    # -------------------------------------------------------------------- geometry
    def resize(self, label: Label, geometry: ResizeGeometry) -> Label:
        """Original pixels -> the model's grid. Labels without geometry pass through."""
        return label

    def warp(self, label: Label, matrix: np.ndarray, size: tuple[int, int]) -> Label:
        """Through the 3×3 ``matrix`` (input -> output pixels) onto an image of ``size`` (H, W)."""
        return label

    def to_original(self, label: Label, geometry: ResizeGeometry) -> Label:
        """The model's grid -> original pixels (the inverse of `resize`)."""
        return label

    # ------------------------------------------------------------------- CSV cells
    @property
    def csv_columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def parse_cells(self, cells: dict[str, str], where: str) -> Label:
        """The label from the text of its CSV columns (not validated against an image yet)."""
        raise NotImplementedError

    def format_cells(self, label: Label, where: str) -> dict[str, str]:
        raise NotImplementedError

    def row_label(self, label: Label) -> Label:
        """The label as one FMC row holds it."""
        return label

    def describe(self, label: Label) -> list[str] | float:
        """What `m2dino data check` tallies: class names present, or the measured value."""
        raise NotImplementedError

    # ---------------------------------------------------------- Hugging Face datasets
    def hf_feature(self) -> Any:
        raise NotImplementedError

    def to_hf(self, label: Label) -> Any:
        return label

    def from_hf(self, value: Any) -> Label:
        return value

    # --------------------------------------------------------------------- batching
    def collate(self, labels: list[Label]) -> np.ndarray | list[np.ndarray]:
        raise NotImplementedError


class MaskKind(LabelKind):
    name, task_type, stored_as_file = "mask", TaskType.SEGMENTATION, True
    headline_metrics = ("DSC", "HD")

    def validate(self, label, image_size, where):
        prefix, n = self._prefix(where), self.spec.num_classes
        mask = np.asarray(label)
        if mask.ndim != 2:
            raise LabelError(f"{prefix}: mask of shape {mask.shape}; expected a 2-D H×W array of class indices")
        if mask.dtype == bool:
            mask = mask.astype(np.uint8)
        if mask.dtype.kind not in "ui":
            raise LabelError(f"{prefix}: mask of dtype {mask.dtype}; expected integer class indices")
        if mask.shape != tuple(image_size):
            raise LabelError(f"{prefix}: mask of size {mask.shape[0]}×{mask.shape[1]} but the image is "
                             f"{image_size[0]}×{image_size[1]} (H×W); expected the same size")
        if mask.size and (mask.min() < 0 or mask.max() >= n):
            bad = sorted(int(v) for v in np.unique(mask) if not 0 <= v < n)
            raise LabelError(f"{prefix}: mask values {bad[:10]} out of range; expected class indices 0..{n - 1}")
        return np.ascontiguousarray(mask, dtype=np.uint8)

    def resize(self, label, geometry):
        return resize_mask(label, geometry)

    def warp(self, label, matrix, size):
        inverse = np.linalg.inv(matrix)[:2].ravel()  # PIL maps output pixels back to input pixels
        image = Image.fromarray(label).transform((size[1], size[0]), Image.Transform.AFFINE, tuple(inverse),
                                                 resample=Image.Resampling.NEAREST)
        return np.asarray(image)

    def to_original(self, label, geometry):
        """Drop the letterbox padding, then nearest neighbour to the original size (exact for
        an integer upscale)."""
        x0, y0, x1, y1 = geometry.content_box
        content = np.ascontiguousarray(np.asarray(label, dtype=np.uint8)[y0:y1, x0:x1])
        height, width = geometry.original_size
        return np.asarray(Image.fromarray(content).resize((width, height), Image.Resampling.NEAREST))

    @property
    def csv_columns(self):
        return ("mask_path",)

    def parse_cells(self, cells, where):
        raise LabelError(f"{self._prefix(where)}: a mask is read from its file (mask_path), not from CSV cells")

    def format_cells(self, label, where):
        raise LabelError(f"{self._prefix(where)}: a mask is written to its own file, not to CSV cells")

    def hf_feature(self):
        import datasets

        return datasets.Image()

    def describe(self, label):
        return [self.spec.class_names[int(v)] for v in np.unique(label)]

    def from_hf(self, value):
        return np.asarray(value)

    def collate(self, labels):
        return np.stack(labels).astype(np.int64)


class ClassKind(LabelKind):
    name, task_type = "class", TaskType.CLASSIFICATION
    headline_metrics = ("Accuracy", "F1_macro", "F1_weighted", "MCC", "AUC")

    def validate(self, label, image_size, where):
        prefix = self._prefix(where)
        if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
            raise LabelError(f"{prefix}: label {label!r} of type {type(label).__name__}; expected an int class index")
        if not 0 <= int(label) < self.spec.num_classes:
            raise LabelError(f"{prefix}: class {int(label)} out of range; expected 0..{self.spec.num_classes - 1}")
        return int(label)

    @property
    def csv_columns(self):
        return ("mask",)  # the challenge stores the class index in a column named "mask"

    def parse_cells(self, cells, where):
        """An integer class index ("2" or "2.0"); ``cells`` holds the one class column, by whatever
        name the caller's layout gives it."""
        ((column, text),) = cells.items()
        text = text.strip()
        try:
            value = float(text)  # "2" and "2.0" both name class 2
            if value.is_integer():
                return int(value)
        except ValueError:
            pass
        raise LabelError(f"{self._prefix(where)}: {column} = {text!r}; expected an integer class index 0.."
                         f"{self.spec.num_classes - 1}")

    def format_cells(self, label, where):
        return {"mask": str(int(label))}

    def describe(self, label):
        return [self.spec.class_names[int(label)]]

    def hf_feature(self):
        import datasets

        return datasets.ClassLabel(names=list(self.spec.class_names))

    def from_hf(self, value):
        return int(value)

    def collate(self, labels):
        return np.asarray(labels, dtype=np.int64)


def _parse_floats(cells: dict[str, str], columns: tuple[str, ...], prefix: str) -> list[float]:
    values = []
    for column in columns:
        text = cells[column]
        try:
            values.append(float(text))
        except (TypeError, ValueError):
            raise LabelError(f"{prefix}: {column} = {text!r}; expected a number") from None
    return values


class _CoordinateRows(LabelKind):
    """Labels that are rows of ``row_width`` pixel coordinates (boxes, keypoints): the same HF feature."""

    row_width: ClassVar[int]

    def hf_feature(self):
        import datasets

        return datasets.List(datasets.List(datasets.Value("float64"), length=self.row_width))

    def to_hf(self, label):
        return np.asarray(label).tolist()

    def from_hf(self, value):
        return np.asarray(value, dtype=np.float64).reshape(-1, self.row_width)


class BoxesKind(_CoordinateRows):
    name, task_type, rows_per_image, row_width = "boxes", TaskType.DETECTION, "many", 4
    headline_metrics = ("IoU",)

    def validate(self, label, image_size, where):
        prefix = self._prefix(where)
        array = self._float_array(label, where)
        if array.shape == (4,):
            array = array[None]
        if array.ndim != 2 or array.shape[1] != 4:
            raise LabelError(f"{prefix}: boxes of shape {array.shape}; expected n×4 (x_min, y_min, x_max, y_max)")
        if len(array) > self.spec.max_boxes:
            raise LabelError(f"{prefix}: {len(array)} boxes; the task allows at most {self.spec.max_boxes}")
        if np.any(array[:, 2] < array[:, 0]) or np.any(array[:, 3] < array[:, 1]):
            raise LabelError(f"{prefix}: box {array.tolist()} has x_max < x_min or y_max < y_min")
        return array

    def resize(self, label, geometry):
        return geometry.boxes_to_target(label)

    def warp(self, label, matrix, size):
        """A rotated box becomes the axis-aligned box of its corners, clipped to the image; a box
        pushed entirely out of the image is dropped."""
        height, width = size
        corners = label[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
        moved = map_points(matrix, corners)
        out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        out = np.clip(out, 0, [width, height, width, height])
        keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
        return out[keep].reshape(-1, 4)

    def to_original(self, label, geometry):
        height, width = geometry.original_size
        boxes = geometry.boxes_to_original(np.asarray(label, dtype=np.float64).reshape(-1, 4))
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        return boxes

    @property
    def csv_columns(self):
        return BOX_COLUMNS

    def parse_cells(self, cells, where):
        return np.array(_parse_floats(cells, BOX_COLUMNS, self._prefix(where)))

    def format_cells(self, label, where):
        boxes = np.asarray(label, dtype=np.float64).reshape(-1, 4)
        if len(boxes) != 1:
            raise LabelError(f"{self._prefix(where)}: {len(boxes)} boxes; the FMC layout holds exactly one box "
                             "per row")
        return {c: repr(float(v)) for c, v in zip(BOX_COLUMNS, boxes[0])}

    def row_label(self, label):
        """An FMC row holds one box, as a (4,) array (x_min, y_min, x_max, y_max)."""
        return np.asarray(label).reshape(-1, 4)[0]

    def describe(self, label):
        return [self.spec.class_names[0]] * len(np.asarray(label).reshape(-1, 4))

    def collate(self, labels):
        return [np.asarray(label, dtype=np.float32).reshape(-1, 4) for label in labels]


class KeypointsKind(_CoordinateRows):
    """K points in the spec's `point_order`: interchangeable points are renumbered by ascending x
    (then y) after every geometric change, so a mirror or a rotation never swaps their meaning."""

    name, task_type, row_width = "keypoints", TaskType.REGRESSION, 2
    headline_metrics = ("MRE",)

    def canonical(self, points: np.ndarray) -> np.ndarray:
        """``points`` (…×K×2) in the task's order: unchanged for anatomical points."""
        if not self.spec.interchangeable_points:
            return points
        order = np.lexsort((points[..., 1], points[..., 0]), axis=-1)
        return np.take_along_axis(points, order[..., None], axis=-2)

    def validate(self, label, image_size, where):
        array = self._float_array(label, where)
        if array.shape != (self.spec.num_keypoints, 2):
            raise LabelError(f"{self._prefix(where)}: keypoints of shape {array.shape}; expected "
                             f"{self.spec.num_keypoints}×2 (x, y)")
        return self.canonical(array)

    def resize(self, label, geometry):
        return self.canonical(geometry.points_to_target(label))

    def warp(self, label, matrix, size):
        return self.canonical(map_points(matrix, label))

    def to_original(self, label, geometry):
        return self.canonical(geometry.points_to_original(np.asarray(label, dtype=np.float64)))

    @property
    def csv_columns(self):
        return tuple(point_column(k) for k in range(1, self.spec.num_keypoints + 1))

    def parse_cells(self, cells, where):
        points = []
        for column in self.csv_columns:
            text = cells[column]
            try:
                point = json.loads(text)
                if len(point) != 2:
                    raise ValueError
                points.append([float(point[0]), float(point[1])])
            except (ValueError, TypeError):
                raise LabelError(f"{self._prefix(where)}: {column} = {text!r}; expected a JSON pair [x, y]") from None
        return np.array(points)

    def format_cells(self, label, where):
        return {point_column(k + 1): json.dumps([float(x), float(y)]) for k, (x, y) in enumerate(label)}

    def describe(self, label):
        return [f"{self.spec.num_keypoints} keypoints"]

    def collate(self, labels):
        return np.stack(labels).astype(np.float32)


class ScalarKind(LabelKind):
    """One measurement in the spec's ``scalar_unit`` (e.g. head circumference in mm); it does not
    move with the image."""

    name, task_type = "scalar", TaskType.REGRESSION
    headline_metrics = ("MAE", "relative_error")

    def validate(self, label, image_size, where):
        if isinstance(label, (bool, np.bool_, str, bytes)) or not np.isscalar(label) or not np.isfinite(label):
            raise LabelError(f"{self._prefix(where)}: value {label!r}; expected a finite number "
                             f"({self.spec.scalar_unit})")
        return float(label)

    @property
    def csv_columns(self):
        return (SCALAR_COLUMN,)

    def parse_cells(self, cells, where):
        return _parse_floats(cells, self.csv_columns, self._prefix(where))[0]

    def format_cells(self, label, where):
        return {SCALAR_COLUMN: repr(float(label))}

    def describe(self, label):
        return float(label)

    def hf_feature(self):
        import datasets

        return datasets.Value("float64")

    def from_hf(self, value):
        return float(value)

    def collate(self, labels):
        return np.asarray(labels, dtype=np.float32)


KINDS: dict[str, type[LabelKind]] = {k.name: k for k in (MaskKind, ClassKind, BoxesKind, KeypointsKind, ScalarKind)}
_BY_TYPE = {TaskType.SEGMENTATION: MaskKind, TaskType.CLASSIFICATION: ClassKind, TaskType.DETECTION: BoxesKind,
            TaskType.REGRESSION: KeypointsKind}


@lru_cache(maxsize=None)
def label_kind_of(spec: LabelledTask) -> LabelKind:
    """The kind of ``spec``'s labels (a scalar-measurement regression task has scalar labels)."""
    return ScalarKind(spec) if spec.scalar_unit is not None else _BY_TYPE[spec.type](spec)
