"""`TaskSpec`: everything the rest of the project needs to know about one task."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..limits import check_bound
from .label_kinds import LabelKind, label_kind_of
from .task_type import TaskType

# Geometric augmentations must be declared per task because some change the label's meaning
# (a mirror turns a left-occiput position into a right one). Photometric ones never do.
GEOMETRIC_AUGMENTATIONS = frozenset({"hflip", "vflip", "rotate", "scale"})
PHOTOMETRIC_AUGMENTATIONS = frozenset({"intensity", "speckle"})
AUGMENTATIONS = GEOMETRIC_AUGMENTATIONS | PHOTOMETRIC_AUGMENTATIONS

# How a keypoint task's points are identified. "anatomical": point k is always the same structure
# (IUGC's symphysis ends and head tangent), so every geometric augmentation keeps the order.
# "left_to_right": the points are interchangeable (the two ends of a femur or of a cervical length
# measure the same distance either way round) and are numbered by a rule: ascending x, then y.
# The rule is re-applied after every augmentation, the loss takes the best matching of points,
# and predictions come out in the same order.
POINT_ORDERS = ("anatomical", "left_to_right")


def _whole(minimum: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _strings(v: object) -> bool:
    return isinstance(v, (list, tuple, set, frozenset)) and all(isinstance(x, str) for x in v)


# The type of each field, checked first: a spec read from a file (a model's config.json, tasks.json)
# with ``class_names: null`` or ``num_classes: "3"`` is one error naming the task and the field.
FIELD_TYPES = {
    "id": (lambda v: isinstance(v, str), "a string"),
    "type": (lambda v: isinstance(v, str), f"one of {[t.value for t in TaskType]}"),
    "num_classes": (_whole(0), "a whole number >= 0"),
    "class_names": (_strings, "a list of class names (strings)"),
    "organ": (lambda v: isinstance(v, str), "a string"),
    "group": (lambda v: isinstance(v, str), "a string"),
    "augmentations": (_strings, f"a list of augmentations from {sorted(AUGMENTATIONS)}"),
    "n_train": (lambda v: v is None or _whole(0)(v), "null or a whole number >= 0"),
    "benchmark": (lambda v: isinstance(v, bool), "true or false"),
    "scalar_unit": (lambda v: v is None or isinstance(v, str), "null or a unit (string)"),
    "max_boxes": (_whole(1), "a whole number >= 1"),
    "point_order": (lambda v: isinstance(v, str), f"one of {POINT_ORDERS}"),
    "source": (lambda v: isinstance(v, str), "a string"),
    "description": (lambda v: isinstance(v, str), "a string"),
}
REQUIRED_FIELDS = ("id", "type", "num_classes", "class_names", "organ", "group")


@dataclass(frozen=True)
class TaskSpec:
    """One task: its label type and everything derived from it.

    ``num_classes`` follows the benchmark's CSV convention: segmentation counts the background,
    classification counts classes, detection counts object classes, regression counts keypoints
    (0 for a scalar-measurement task, which sets ``scalar_unit`` instead).
    """

    id: str
    type: TaskType
    num_classes: int
    class_names: tuple[str, ...]
    organ: str
    group: str
    augmentations: frozenset[str] = frozenset({"hflip", "rotate", "scale", "intensity", "speckle"})
    n_train: int | None = None
    benchmark: bool = False
    scalar_unit: str | None = None
    max_boxes: int = 1
    point_order: str = "anatomical"
    source: str = ""
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        shown = repr(self.id) if isinstance(self.id, str) else "?"
        for name, (check, expected) in FIELD_TYPES.items():
            if not check(getattr(self, name)):
                raise ValueError(f"task {shown}: field {name!r} is {getattr(self, name)!r:.60}; expected {expected}")
        if self.type not in {t.value for t in TaskType}:
            raise ValueError(f"task {shown}: field 'type' is {self.type!r}; expected {FIELD_TYPES['type'][1]}")
        # one output channel (or point) per class: bounded like any other width a file can set
        check_bound(f"task {shown}: num_classes", self.num_classes, "width")
        object.__setattr__(self, "type", TaskType(self.type))
        object.__setattr__(self, "class_names", tuple(self.class_names))
        object.__setattr__(self, "augmentations", frozenset(self.augmentations))
        if not self.id or not self.id.replace("_", "").isalnum():
            raise ValueError(f"task id {self.id!r}: expected letters, digits and '_' only")
        unknown = self.augmentations - AUGMENTATIONS
        if unknown:
            raise ValueError(f"task {self.id!r}: unknown augmentations {sorted(unknown)}; "
                             f"expected a subset of {sorted(AUGMENTATIONS)}")
        if self.point_order not in POINT_ORDERS:
            raise ValueError(f"task {self.id!r}: point_order {self.point_order!r}; expected one of {POINT_ORDERS}")
        if self.point_order != "anatomical" and (self.type is not TaskType.REGRESSION or self.scalar_unit):
            raise ValueError(f"task {self.id!r}: point_order applies to keypoint tasks only")
        if self.scalar_unit is not None and self.type is not TaskType.REGRESSION:
            raise ValueError(f"task {self.id!r}: scalar_unit is only valid for regression tasks")
        if self.is_scalar:
            if self.num_classes != 0:
                raise ValueError(f"task {self.id!r}: a scalar regression task has num_classes=0, "
                                 f"got {self.num_classes}")
        else:
            minimum = 2 if self.type in (TaskType.SEGMENTATION, TaskType.CLASSIFICATION) else 1
            if self.num_classes < minimum:
                raise ValueError(f"task {self.id!r}: {self.type.value} needs num_classes >= {minimum}, "
                                 f"got {self.num_classes}")
            if len(self.class_names) != self.num_classes:
                raise ValueError(f"task {self.id!r}: {len(self.class_names)} class_names for "
                                 f"num_classes={self.num_classes}")

    @property
    def is_scalar(self) -> bool:
        """A regression task that predicts one measurement (e.g. head circumference in mm)."""
        return self.scalar_unit is not None

    @property
    def interchangeable_points(self) -> bool:
        """True when the points carry no identity of their own (see `POINT_ORDERS`)."""
        return self.point_order != "anatomical"

    @property
    def num_keypoints(self) -> int:
        return self.num_classes if self.type is TaskType.REGRESSION else 0

    @property
    def label_kind(self) -> LabelKind:
        """What a sample of this task carries (mask, class, boxes, keypoints or scalar) and all the
        behaviour that goes with it (`m2dino.tasks.label_kinds`)."""
        return label_kind_of(self)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics this task is judged by: its label kind's headline metrics."""
        return self.label_kind.headline_metrics

    def allows(self, augmentation: str) -> bool:
        if augmentation not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {augmentation!r}; expected one of {sorted(AUGMENTATIONS)}")
        return augmentation in self.augmentations

    def to_dict(self) -> dict:
        return {"id": self.id, "type": self.type.value, "num_classes": self.num_classes,
                "class_names": list(self.class_names), "organ": self.organ, "group": self.group,
                "augmentations": sorted(self.augmentations),
                "n_train": self.n_train, "benchmark": self.benchmark, "scalar_unit": self.scalar_unit,
                "max_boxes": self.max_boxes, "point_order": self.point_order, "source": self.source,
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict) -> "TaskSpec":
        if not isinstance(data, dict):
            raise ValueError(f"task spec {data!r:.60}: expected an object of task fields")
        # Specs saved before the metrics came from the label kind carry them: derived now, so dropped.
        data = {name: value for name, value in data.items() if name != "metrics"}
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ValueError(f"task spec {data.get('id', '?')!r}: unknown fields {sorted(extra)}")
        missing = [name for name in REQUIRED_FIELDS if name not in data]
        if missing:
            raise ValueError(f"task spec {data.get('id', '?')!r}: field {missing[0]!r} missing; "
                             f"expected {FIELD_TYPES[missing[0]][1]}")
        return cls(**data)
