"""`PretrainConfig`: every knob of one self-distillation run (saved with each checkpoint; resume compares)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .crops import CropConfig
from .model import LossConfig

# Settings that do not change what is trained: resume may change them.
FREE_ON_RESUME = ("output_dir", "log_every", "checkpoint_every", "keep_checkpoints", "num_workers", "threads")


@dataclass
class PretrainConfig:
    output_dir: str = "runs/pretrain"
    backbone: str = "mini"
    backbone_overrides: dict = field(default_factory=dict)
    pretrained: str | None = None     # starting backbone weights (any source `load_backbone_weights` reads)
    data: list[str] = field(default_factory=list)  # the unlabelled sources: FOLDER, fmc:ROOT or NAME:PATH
    held_out: list[str] = field(default_factory=list)  # validation/test images that may not be pretrained on
    steps: int = 1000
    batch_size: int = 16              # images per process per step (each gives 2 global + n local crops)
    lr: float = 5e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 50
    weight_decay: float = 0.04
    clip_grad_norm: float | None = 3.0
    drop_path_rate: float = 0.0
    teacher_temperature: tuple[float, float] = (0.04, 0.07)
    teacher_temperature_warmup: int = 300
    momentum: tuple[float, float] = (0.992, 1.0)
    mask_ratio: tuple[float, float] = (0.1, 0.5)
    mask_probability: float = 0.5
    mixed_precision: str = "auto"
    log_every: int = 10
    checkpoint_every: int | None = None
    keep_checkpoints: int = 2
    max_nonfinite_in_row: int = 10
    # The DINO and iBOT prototypes are not updated for this many steps (DINO's frozen last layer). With
    # more prototypes than bottleneck dimensions no unit vector scores them all alike, so while they
    # stay put the student cannot answer with a uniform prediction.
    freeze_prototypes_steps: int = 0
    # LayerScale set to this before a random-init run (None: timm's 1e-5). The recipe's default is 0.1
    # (CaiT's value for up to 18 blocks): at 1e-5 a random ViT's CLS token ignores the image, the DINO
    # targets start uniform, and in our 1,600-step run they stayed uniform.
    layerscale_init: float | None = None
    # Collapse, counted only after the lr warm-up (a randomly initialised teacher starts out collapsed and
    # the student needs time to move it): the teacher logits' relative std across the batch below
    # collapse_threshold (every image gets the same output), or the teacher's mean prediction entropy
    # above collapse_entropy × ln K (every image gets a uniform output).
    collapse_threshold: float = 1e-3
    collapse_entropy: float = 0.99
    collapse_patience: int = 100      # collapsed this many steps in a row (after warm-up) stops the run
    seed: int = 0
    num_workers: int = 0
    threads: int | None = None        # torch CPU threads (None: torch's choice)
    crops: CropConfig = field(default_factory=CropConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if isinstance(self.crops, dict):
            self.crops = CropConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.crops.items()})
        if isinstance(self.loss, dict):
            self.loss = LossConfig(**self.loss)
        for name in ("steps", "batch_size", "log_every", "max_nonfinite_in_row", "collapse_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.layerscale_init is not None and self.pretrained:
            raise ValueError(f"layerscale_init={self.layerscale_init} with pretrained={self.pretrained!r}: a "
                             "pretrained backbone's LayerScale is part of its weights; set it for random init only")
        if self.batch_size < 2:
            raise ValueError(f"batch_size={self.batch_size}: self-distillation needs at least 2 images per step "
                             "(KoLeo and Sinkhorn-Knopp compare images within the batch)")

    def to_dict(self) -> dict:
        """JSON-ready (tuples as lists, as they come back from JSON)."""
        import json

        return json.loads(json.dumps(asdict(self)))
