"""`M2DINOConfig`: everything needed to rebuild an M2DINO model, saved as config.json beside the weights."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..image import RESIZE_MODES, Preprocessing, backbone_normalization
from ..limits import LimitError, check_bound, current, environment_variable, finite_number, positive_int
from ..tasks import TaskSpec, get_task, list_tasks
from .backbone_configs import check_overrides, resolve_backbone
from .moe import ROUTING_MODES

CONFIG_NAME = "config.json"
MODEL_TYPE = "m2dino"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ints(value: object) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_int(v) for v in value)


def _three_numbers(value: object) -> bool:
    return value is None or (isinstance(value, (list, tuple)) and len(value) == 3 and all(map(_is_number, value)))


# The JSON shape of each field of config.json, checked before anything is built, so a bad file is one
# line naming the field rather than a failure deep inside model construction or weight loading.
FIELD_SHAPES: dict[str, tuple] = {
    "backbone": (lambda v: isinstance(v, str), "a backbone name (string)"),
    "tasks": (lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v), "a list of task ids"),
    "moe_blocks": (_ints, "a list of block indices (integers)"),
    "num_experts": (_is_int, "an integer"),
    "top_k": (_is_int, "an integer"),
    "routing": (lambda v: isinstance(v, str), f"one of {ROUTING_MODES}"),
    "task_embed_dim": (_is_int, "an integer"),
    "decoder_features": (_is_int, "an integer"),
    "spatial_prior": (lambda v: isinstance(v, bool), "true or false"),
    "feature_blocks": (lambda v: v is None or _ints(v), "null or a list of 4 block indices"),
    "image_size": (lambda v: _is_int(v) or (_ints(v) and len(v) == 2), "an integer or [height, width]"),
    "resize_mode": (lambda v: isinstance(v, str), f"one of {RESIZE_MODES}"),
    "mean": (_three_numbers, "null or 3 numbers"),
    "std": (_three_numbers, "null or 3 numbers"),
    "balance_loss_weight": (_is_number, "a number"),
    "drop_path_rate": (_is_number, "a number"),
    "backbone_overrides": (lambda v: isinstance(v, dict), "an object of architecture settings"),
    "backbone_weights": (lambda v: v is None or isinstance(v, str), "null or a string (provenance, never read)"),
    "collapsed_moe": (lambda v: isinstance(v, dict), "an object (block -> experts kept)"),
    "task_specs": (lambda v: isinstance(v, dict), "an object (task id -> spec)"),
    "training": (lambda v: isinstance(v, dict), "an object"),
}
# Without these a file would silently get defaults that do not match its weights.
REQUIRED_FIELDS = ("backbone", "tasks", "moe_blocks", "num_experts")


def _default_tasks() -> list[str]:
    return [t.id for t in list_tasks()]


@dataclass
class M2DINOConfig:
    backbone: str = "vit_small_patch16_dinov3"
    tasks: list[str] = field(default_factory=_default_tasks)
    moe_blocks: tuple[int, ...] = ()           # blocks whose MLP becomes a TaskMoE (negative = from the end)
    num_experts: int = 8
    top_k: int = 2
    routing: str = "task"                      # "task" or "task+token"
    task_embed_dim: int = 64
    decoder_features: int = 64                 # channels of the DPT decoders (dense heads)
    spatial_prior: bool = False                # a conv branch feeding strides 4 and 8 to the dense heads
    feature_blocks: tuple[int, ...] | None = None  # 4 blocks feeding dense heads; None = evenly spaced
    image_size: tuple[int, int] = (256, 256)   # model input (H, W) that `predict` resizes to
    resize_mode: str = "letterbox"
    mean: tuple[float, float, float] | None = None  # None = the backbone's pretrained normalisation
    std: tuple[float, float, float] | None = None
    balance_loss_weight: float = 0.01
    drop_path_rate: float = 0.0
    backbone_overrides: dict = field(default_factory=dict)
    backbone_weights: str | None = None        # provenance of the backbone's initial weights: never loaded
    collapsed_moe: dict[int, int] = field(default_factory=dict)  # block -> experts kept (extract_task)
    task_specs: dict[str, dict] = field(default_factory=dict)    # saved specs, so user tasks travel
    training: dict = field(default_factory=dict)                 # recorded by the training engine

    def __post_init__(self) -> None:
        self.backbone = resolve_backbone(self.backbone)[0]
        self.tasks = list(self.tasks)
        if isinstance(self.image_size, int):
            self.image_size = (self.image_size, self.image_size)
        self.image_size = tuple(int(s) for s in self.image_size)
        self.moe_blocks = tuple(int(b) for b in self.moe_blocks)
        self.collapsed_moe = {int(b): int(k) for b, k in self.collapsed_moe.items()}
        if self.feature_blocks is not None:
            self.feature_blocks = tuple(int(b) for b in self.feature_blocks)
        if self.mean is None or self.std is None:
            mean, std = backbone_normalization(resolve_backbone(self.backbone)[1].timm_name)
            self.mean, self.std = self.mean or mean, self.std or std
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.validate()

    def validate(self) -> None:
        self.check_sizes()
        if not self.tasks:
            raise ValueError("M2DINOConfig.tasks is empty; expected at least one task id")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"M2DINOConfig.tasks has duplicates: {self.tasks}")
        for task in self.tasks:
            if task not in self.task_specs:
                get_task(task)  # raises with the closest ids
        for task, spec in self.task_specs.items():  # a saved spec is read now: one line naming task and field
            if TaskSpec.from_dict(spec).id != task:
                raise ValueError(f"task_specs[{task!r}] is the spec of task {spec['id']!r}")
        if self.routing not in ROUTING_MODES:
            raise ValueError(f"M2DINOConfig.routing={self.routing!r}; expected one of {ROUTING_MODES}")
        if self.moe_blocks and not 1 <= self.top_k <= self.num_experts:
            raise ValueError(f"M2DINOConfig.top_k={self.top_k} must be in 1..num_experts={self.num_experts}")
        if len(set(self.moe_blocks)) != len(self.moe_blocks):
            raise ValueError(f"M2DINOConfig.moe_blocks has duplicates: {self.moe_blocks}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"M2DINOConfig.resize_mode={self.resize_mode!r}; expected one of {RESIZE_MODES}")
        if any(s <= 0 or s % 16 for s in self.image_size):
            raise ValueError(f"M2DINOConfig.image_size={self.image_size}: sides must be positive multiples of 16")
        if not isinstance(self.spatial_prior, bool):
            raise ValueError(f"M2DINOConfig.spatial_prior={self.spatial_prior!r}: expected true or false")
        if self.feature_blocks is not None and len(self.feature_blocks) != 4:
            raise ValueError(f"M2DINOConfig.feature_blocks needs 4 blocks, got {self.feature_blocks}")
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError(f"M2DINOConfig.mean={self.mean}: expected 3 finite numbers")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"M2DINOConfig.std={self.std}: expected 3 positive numbers (images are divided by it)")

    def check_sizes(self) -> None:
        """Every size a config file can set, within `m2dino.limits`, before anything is built or allocated
        (a downloaded config.json with ``num_experts: 1000000000`` used to copy experts until killed)."""
        positive_int("num_experts", self.num_experts, "experts")
        positive_int("top_k", self.top_k, "experts")
        positive_int("task_embed_dim", self.task_embed_dim, "width")
        positive_int("decoder_features", self.decoder_features, "width")
        for side in self.image_size:
            check_bound("image_size side", side, "input_side")
        blocks = [("moe_blocks", b) for b in self.moe_blocks] + [("collapsed_moe", b) for b in self.collapsed_moe] \
            + [("feature_blocks", b) for b in self.feature_blocks or ()]
        check_bound("moe_blocks count", len(self.moe_blocks), "blocks")
        limit = current().blocks
        for name, block in blocks:
            if not -limit <= block < limit:
                raise LimitError(f"{name}: block {block:,} is beyond m2dino's limit of {limit} blocks (raise it "
                                 f"with {environment_variable('blocks')} if this is intended)")
        for block, kept in self.collapsed_moe.items():
            positive_int(f"collapsed_moe[{block}]", kept, "experts")
        finite_number("balance_loss_weight", self.balance_loss_weight, 0)
        finite_number("drop_path_rate", self.drop_path_rate, 0, 1)
        check_overrides(self.backbone_overrides)

    @property
    def preprocessing(self) -> Preprocessing:
        """How images become this model's input: used by predict, evaluation and training alike."""
        return Preprocessing(self.image_size, self.resize_mode, self.mean, self.std)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["collapsed_moe"] = {str(b): k for b, k in self.collapsed_moe.items()}
        return {"model_type": MODEL_TYPE, **data}

    @classmethod
    def from_dict(cls, data: dict, source: str = "config") -> "M2DINOConfig":
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a JSON {type(data).__name__}; expected an object of config fields")
        data = dict(data)
        model_type = data.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {model_type!r} is not an M2DINO config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown config fields {unknown}; this m2dino knows {sorted(known)}")
        for name in REQUIRED_FIELDS:
            if name not in data:
                raise ValueError(f"{source}: field {name!r} missing; expected {FIELD_SHAPES[name][1]}")
        for name, value in data.items():
            check, expected = FIELD_SHAPES.get(name, (lambda v: True, ""))
            if not check(value):
                shown = json.dumps(value)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise ValueError(f"{source}: field {name!r} is {shown}; expected {expected}")
        try:
            return cls(**data)
        except ValueError as err:  # a value check (bounds, allow-list): name the file too
            if type(err) not in (ValueError, LimitError):
                raise
            raise type(err)(f"{source}: {err}") from None

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "M2DINOConfig":
        path = Path(path)
        if path.is_dir():
            path = path / CONFIG_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no {CONFIG_NAME} at {path}") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=str(path))
