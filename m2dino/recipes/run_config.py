"""`RunConfig`: the whole truth about one training run, as typed dataclasses.

A run is started from Python (``train(RunConfig(...))``), from a YAML file (``m2dino train run.yaml
--set train.steps=500``) or from a recipe's flags (`m2dino.recipes.flags`); all three build this
object, and every run folder gets its ``run.yaml``, which rebuilds the same object exactly.

The defaults are the embedded default run: the 27-task synthetic suite on the small ``mini``
backbone, a few minutes on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.loading import LoaderConfig
from ..data.torch_dataset import AUGMENT_PLACES
from ..data.transforms import DEVICE_ONLY_POLICIES, AugmentConfig
from ..training.semi.semi_config import SemiConfig
from ..training.train_config import TrainSettings
from .config_io import config_from_dict, config_to_dict, config_to_yaml, write_config_yaml

RECIPES = ("unified", "grouped", "task_specific")
ROUTINGS = ("task", "task+token")
UNLABELED_OVERLAP = ("error", "exclude")
RUN_YAML = "run.yaml"


@dataclass
class DataSettings:
    """Which images and labels a run trains and validates on."""

    # 'synthetic', an FMC_UIA root, or NAME:PATH (hc18, african_planes, usgra, busi, psfhs, pocus, mmotu,
    # ddti, folder); several are merged (each task from one source)
    sources: list[str] = field(default_factory=lambda: ["synthetic"])
    val: str | None = None                # FMC_UIA root of the validation split (else 20 % held out)
    tasks: list[str] | None = None        # None: every task in the data
    synthetic_per_task: int = 64
    fraction: float = 1.0                 # of each task's training images (seeded by train.seed)
    train_images: str | None = None       # a list file: train on these images only
    unlabeled: list[str] | None = None    # unlabelled sources for semi-supervised training ('rest' included)
    unlabeled_overlap: str = "error"      # unlabelled images that are validation images: error or exclude
    num_workers: int | None = None        # DataLoader workers (None: CPU cores per process - 1, at most 8)
    cache_dir: str | None = None          # the resize cache
    memory_cache_bytes: int = LoaderConfig.memory_cache_bytes  # a resized training set this small stays in RAM
    skip_bad_samples: bool = False
    augment_on: str = "device"            # where augmentation runs: device (batched torch) or worker (numpy/PIL)
    # policy (default, trivial, ultrasound), strength (multiplies every magnitude) and each range
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("data.sources: expected at least one source ('synthetic', a root or NAME:PATH)")
        if self.tasks is not None and not self.tasks:
            raise ValueError("data.tasks: an empty list selects nothing; use null for every task in the data")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"data.fraction must be in (0, 1], got {self.fraction}")
        if self.synthetic_per_task < 2:
            raise ValueError(f"data.synthetic_per_task must be >= 2, got {self.synthetic_per_task}")
        if self.unlabeled_overlap not in UNLABELED_OVERLAP:
            raise ValueError(f"data.unlabeled_overlap={self.unlabeled_overlap!r}; expected one of {UNLABELED_OVERLAP}")
        if self.memory_cache_bytes < 0:
            raise ValueError(f"data.memory_cache_bytes must be >= 0 (0: decode at every use), got "
                             f"{self.memory_cache_bytes}")
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.augment_on not in AUGMENT_PLACES:
            raise ValueError(f"data.augment_on={self.augment_on!r}; expected one of {AUGMENT_PLACES}")
        if self.augment_on == "worker" and self.augment.policy in DEVICE_ONLY_POLICIES:
            raise ValueError(f"data.augment.policy={self.augment.policy!r} runs on the training device only; "
                             "set data.augment_on=device")


@dataclass
class ModelSettings:
    """The M2DINO to build for each model of the run (its tasks come from the data and the recipe)."""

    backbone: str | None = None           # S, S+, B, L, H+, mini, test or a full name; None: the pretrained size,
                                          # else mini
    pretrained: str | None = None         # backbone weights: a zoo backbone name, a Hub id or a .safetensors file
    moe_blocks: tuple[int, ...] = (2, 3)  # negative = from the end; () for a dense model
    num_experts: int = 4
    top_k: int = 1
    routing: str = "task"
    image_size: int = 64
    decoder_features: int = 32
    spatial_prior: bool = False           # a convolutional branch feeding strides 4 and 8 to the dense heads

    def __post_init__(self) -> None:
        self.moe_blocks = tuple(self.moe_blocks)
        if self.pretrained in ("", "none"):  # the flags' spelling of "no weights"
            self.pretrained = None
        if self.routing not in ROUTINGS:
            raise ValueError(f"model.routing={self.routing!r}; expected one of {ROUTINGS}")
        for name in ("num_experts", "top_k", "image_size", "decoder_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.moe_blocks and self.top_k > self.num_experts:
            raise ValueError(f"model.top_k={self.top_k} exceeds model.num_experts={self.num_experts}")


def default_train_settings() -> TrainSettings:
    """The embedded default run's training settings (the engine's own defaults suit a pretrained start)."""
    return TrainSettings(steps=2000, batch_size=16, lr=2e-3, backbone_lr=1e-3, eval_every=1000)


@dataclass
class RunConfig:
    """One training run: ``recipe`` decides how the selected tasks are split into models."""

    recipe: str = "unified"               # unified: one model; grouped: one per group; task_specific: one per task
    output_dir: str = "runs/unified"
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=default_train_settings)
    semi: SemiConfig | None = None        # None: supervised
    groups: str | None = None             # grouped: a JSON/YAML file {group: [task ids]}; None: the registry's groups
    affinity_every: int = 0               # unified: measure task affinity every N steps (0: off)
    affinity_groups: int | None = None    # unified: groups in the recommended grouping
    two_stage_steps: int = 0              # refit the classification heads alone for N steps afterwards (0: off)
    threads: int | None = None            # torch CPU threads (None: torch's choice)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe={self.recipe!r}; expected one of {RECIPES}")
        if (self.semi is None) != (self.data.unlabeled is None):
            raise ValueError("semi-supervised training needs both semi (the method) and data.unlabeled (the "
                             "unlabelled images); got only one")
        if self.groups is not None and self.recipe != "grouped":
            raise ValueError(f"groups={self.groups!r} applies to the grouped recipe, not {self.recipe!r}")
        if self.affinity_every and self.recipe != "unified":
            raise ValueError(f"affinity_every applies to the unified recipe, not {self.recipe!r}")
        if self.affinity_every < 0:
            raise ValueError(f"affinity_every must be >= 0, got {self.affinity_every}")
        if self.affinity_every and self.affinity_every >= self.train.steps:
            raise ValueError(f"--affinity-every {self.affinity_every}: no measurement within --steps "
                             f"{self.train.steps}")
        if self.two_stage_steps < 0:
            raise ValueError(f"two_stage_steps must be >= 0, got {self.two_stage_steps}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        self._check_fsdp()

    def _check_fsdp(self) -> None:
        """FSDP is built and tested for supervised training (evaluation, saving and resuming gather the
        shards); these features read or rewrap the whole model mid-run, which under FSDP lives in shards."""
        if self.train.distributed != "fsdp":
            return
        features = (("semi", self.semi is not None), ("two_stage_steps", self.two_stage_steps),
                    ("affinity_every", self.affinity_every), ("train.lora_rank", self.train.lora_rank))
        used = [name for name, on in features if on]
        if used:
            raise ValueError(f"train.distributed='fsdp' with {', '.join(used)}: not supported under FSDP yet (they use "
                             "the whole model mid-run, which FSDP keeps in shards); use train.distributed='ddp'")

    # ------------------------------------------------------------------ dict / YAML round trip
    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "run config") -> RunConfig:
        """A config from a (partial) mapping: what it leaves out keeps the embedded default's value."""
        return config_from_dict(cls, values, source)

    def to_yaml(self) -> str:
        return config_to_yaml(self)

    def write(self, folder: str | Path) -> Path:
        return write_config_yaml(self, folder, RUN_YAML)

    @classmethod
    def read(cls, path: str | Path, overrides: list[str] = ()) -> RunConfig:
        """A YAML run config (e.g. a run's own ``run.yaml``), with ``key=value`` overrides applied."""
        from .config_io import apply_overrides, read_yaml_mapping

        return cls.from_dict(apply_overrides(read_yaml_mapping(path), overrides), str(path))
