"""`TrainSettings`: the knobs of a training run; `TrainConfig`: those of one model's training (recorded in
the saved model's config and compared on resume)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LOSS_WEIGHTINGS = ("equal", "uncertainty")
MIXED_PRECISION = ("auto", "no", "bf16", "fp16")
DISTRIBUTED = ("ddp", "fsdp")  # several processes: a replica each, or weights and optimizer state in shards
CLASS_BALANCE = ("none", "sampling", "loss")


@dataclass
class TrainSettings:
    """How to train, whatever the model and its folder: the ``train`` section of a run config."""

    steps: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3                 # heads, routers and task embeddings
    backbone_lr: float = 1e-4        # pretrained blocks learn slower than the new parts
    layer_decay: float | None = None  # e.g. 0.75: block i gets backbone_lr · decay^(depth − i)
    weight_decay: float = 0.05
    warmup_steps: int = 50
    min_lr_ratio: float = 0.01       # cosine decays to this fraction of each group's lr
    clip_grad_norm: float | None = 1.0
    mixed_precision: str = "auto"    # auto = bf16 on a GPU that supports it, else fp32
    compile: bool = False            # torch.compile the training step (eager, with a message, where torch cannot)
    distributed: str = "ddp"         # how several processes (torchrun, accelerate launch) share the model
    alpha: float = 0.5               # task sampling ∝ n_task^alpha
    loss_weighting: str = "equal"
    # Classification tasks: "sampling" draws each task's classes equally often (data.sampling), "loss"
    # weighs each class's cross-entropy by (1-β)/(1-β^n_class) (β = 1: inverse frequency; models.losses)
    class_balance: str = "none"
    class_balance_beta: float = 1.0
    label_smoothing: float = 0.0     # classification targets (1-ε)·one-hot + ε/C
    lora_rank: int | None = None
    lora_alpha: float | None = None  # default 2·rank
    freeze_backbone: bool = False
    eval_every: int = 200
    log_every: int = 10
    checkpoint_every: int | None = None  # None = only at the end (and on SIGTERM)
    keep_checkpoints: int = 2
    max_nonfinite_in_row: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting={self.loss_weighting!r}; expected one of {LOSS_WEIGHTINGS}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision={self.mixed_precision!r}; expected one of {MIXED_PRECISION}")
        if self.distributed not in DISTRIBUTED:
            raise ValueError(f"distributed={self.distributed!r}; expected one of {DISTRIBUTED}")
        if self.class_balance not in CLASS_BALANCE:
            raise ValueError(f"class_balance={self.class_balance!r}; expected one of {CLASS_BALANCE}")
        if not 0 < self.class_balance_beta <= 1:
            raise ValueError(f"class_balance_beta must be in (0, 1], got {self.class_balance_beta}")
        if self.class_balance_beta != 1 and self.class_balance != "loss":
            raise ValueError(f"class_balance_beta={self.class_balance_beta} is used only with class_balance='loss', "
                             f"got class_balance={self.class_balance!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "log_every", "max_nonfinite_in_row",
                     "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 (or None: only at the end), got {self.checkpoint_every}")
        for name in ("lr", "backbone_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if self.lora_rank and self.freeze_backbone:
            raise ValueError("choose --lora or --freeze-backbone, not both: "
                             "LoRA already freezes the backbone's weights")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig(TrainSettings):
    """One model's training: the settings plus where it is written and which tasks it learns."""

    output_dir: str = "runs/unified"
    tasks: list[str] = field(default_factory=list)
    semi: dict | None = None         # `m2dino.training.semi.SemiConfig` as a dict; None = supervised only

    @classmethod
    def for_model(cls, settings: TrainSettings, output_dir: str, tasks: list[str]) -> TrainConfig:
        return cls(**asdict(settings), output_dir=output_dir, tasks=list(tasks))
