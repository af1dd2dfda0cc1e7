"""`M2DINOConfig`: everything needed to rebuild an M2DINO model, saved as config.json beside the weights."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import timm

from ..image import RESIZE_MODES, Preprocessing
from ..tasks import get_task, list_tasks
from .backbone_configs import resolve_backbone
from .moe import ROUTING_MODES

CONFIG_NAME = "config.json"
MODEL_TYPE = "m2dino"


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
    feature_blocks: tuple[int, ...] | None = None  # 4 blocks feeding dense heads; None = evenly spaced
    image_size: tuple[int, int] = (256, 256)   # model input (H, W) that `predict` resizes to
    resize_mode: str = "letterbox"
    mean: tuple[float, float, float] | None = None  # None = the backbone's pretrained normalisation
    std: tuple[float, float, float] | None = None
    balance_loss_weight: float = 0.01
    drop_path_rate: float = 0.0
    backbone_overrides: dict = field(default_factory=dict)
    backbone_weights: str | None = None        # provenance of the backbone's initial weights
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
            pretrained = timm.models.get_pretrained_cfg(resolve_backbone(self.backbone)[1].timm_name)
            self.mean = tuple(self.mean or pretrained.mean)
            self.std = tuple(self.std or pretrained.std)
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        self.validate()

    def validate(self) -> None:
        if not self.tasks:
            raise ValueError("M2DINOConfig.tasks is empty; expected at least one task id")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"M2DINOConfig.tasks has duplicates: {self.tasks}")
        for task in self.tasks:
            if task not in self.task_specs:
                get_task(task)  # raises with the closest ids
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
        if self.feature_blocks is not None and len(self.feature_blocks) != 4:
            raise ValueError(f"M2DINOConfig.feature_blocks needs 4 blocks, got {self.feature_blocks}")

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
        data = dict(data)
        model_type = data.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            raise ValueError(f"{source}: model_type {model_type!r} is not an M2DINO config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown config fields {unknown}; this m2dino knows {sorted(known)}")
        return cls(**data)

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
