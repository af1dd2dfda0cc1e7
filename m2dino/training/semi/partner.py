"""`CNNPartner`: a convolutional co-training partner for cross pseudo supervision (``--semi cps``).

FM-DACL co-trains a foundation model with a CNN because the two make different mistakes: the
ViT sees global context at stride 16, the CNN local texture at stride 4. Here a timm CNN encoder
(``features_only``: strides 4, 8, 16, 32) is fused top-down U-Net style (upsample, concatenate the
skip, convolve) into a stride-4 map, whose pixels are folded into the patch grid (pixel-unshuffle,
so no detail is averaged away) and handed to the SAME task heads M2DINO uses. The partner
therefore predicts every task type M2DINO does, its outputs are the same typed outputs, and its
losses, pseudo-labels and post-processing are the heads' own; `evaluate_model` scores it like a
model. Saved beside the model as ``partner/`` (config.json + model.safetensors).

It lives with semi-supervised training, its only user; `m2dino.models.batch_prediction` and the
evaluation run it through the model's inference interface, without importing it. Like `M2DINO`, it
keeps its own copy of its config and its own task specs (saved in the copy's ``task_specs``):
building or loading a partner changes neither the caller's config nor the task registry.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ...image import IMAGENET_MEAN, IMAGENET_STD, ImageLike, Preprocessing, ResizeGeometry
from ...limits import check_bound
from ...models.backbone import BackboneOutput
from ...models.heads import build_head
from ...models.hub import load_state_dict_checked
from ...models.multitask import resolve_task_specs
from ...models.outputs import TaskOutput
from ...models.predictions import Prediction
from ...tasks import TaskSpec

PATCH = 16  # the heads read a 16-pixel patch grid, as from the ViT
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass
class PartnerConfig:
    tasks: list[str]
    image_size: tuple[int, int] = (64, 64)   # model input (H, W), as M2DINOConfig.image_size
    encoder: str = "resnet18"          # any timm CNN with features_only and four stages at strides 4-32
    width: int = 128                   # channels of the patch-grid features the heads read
    decoder_features: int = 32
    resize_mode: str = "letterbox"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    task_specs: dict = field(default_factory=dict)
    architecture: str = "CNNPartner"   # tells a saved partner from a saved M2DINO (`is_partner_folder`)

    def __post_init__(self) -> None:
        size = self.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        if any(side % 32 for side in self.image_size):
            raise ValueError(f"PartnerConfig.image_size={self.image_size}: a CNN partner needs multiples of 32 "
                             "(its deepest stage has stride 32)")
        for side in self.image_size:
            check_bound("PartnerConfig.image_size side", side, "input_side")
        for name in ("width", "decoder_features"):
            check_bound(f"PartnerConfig.{name}", getattr(self, name), "width")
        # A saved partner's config.json comes from a stranger: timm reads "hf-hub:" / "local-dir:" names from the
        # network or another folder, so only a plain architecture name of timm's registry is honoured.
        if not isinstance(self.encoder, str) or self.encoder not in _timm_models():
            raise ValueError(f"PartnerConfig.encoder={self.encoder!r}: expected a timm architecture name such as "
                             "'resnet18' (no hub or folder prefix)")

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing(self.image_size, self.resize_mode, self.mean, self.std)


def _timm_models() -> set[str]:
    import timm

    return set(timm.list_models())


class UNetFusion(nn.Module):
    """Top-down: the deepest map is upsampled and merged with each shallower skip, down to stride 4."""

    def __init__(self, channels: Sequence[int], features: int) -> None:
        super().__init__()
        *skips, deepest = channels
        self.lateral = nn.Conv2d(deepest, features, 1)
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(features + c, features, 3, padding=1), nn.BatchNorm2d(features), nn.ReLU())
            for c in reversed(skips))

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        *skips, deepest = maps
        x = self.lateral(deepest)
        for merge, skip in zip(self.merge, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([x, skip], dim=1))
        return x


class CNNPartner(nn.Module):
    def __init__(self, config: PartnerConfig) -> None:
        super().__init__()
        import timm

        self.task_specs: dict[str, TaskSpec] = resolve_task_specs(config.tasks, config.task_specs)
        self.config = config = copy.deepcopy(config)
        config.task_specs = {t: s.to_dict() for t, s in self.task_specs.items()}
        self.encoder = timm.create_model(config.encoder, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
        reductions = self.encoder.feature_info.reduction()
        if list(reductions) != [4, 8, 16, 32]:
            raise ValueError(f"partner encoder {config.encoder!r} has stages at strides {reductions}; expected "
                             "[4, 8, 16, 32] (a ResNet-like CNN, e.g. resnet18, resnet34, efficientnet_b0)")
        features = config.decoder_features
        self.fusion = UNetFusion(self.encoder.feature_info.channels(), features)
        # Four levels on the patch grid for the heads' DPT decoder: the fused stride-4 map folded 4×4
        # into channels, and the encoder's stride-8/16/32 maps brought to the same grid.
        _, c8, c16, c32 = self.encoder.feature_info.channels()
        self.levels = nn.ModuleList([nn.Conv2d(features * 16, config.width, 1), nn.Conv2d(c8 * 4, config.width, 1),
                                     nn.Conv2d(c16, config.width, 1), nn.Conv2d(c32, config.width, 1)])
        self.norm = nn.LayerNorm(config.width)
        specs = list(self.task_specs.values())
        self.task_ids = [s.id for s in specs]
        self.heads = nn.ModuleDict({s.id: build_head(s, config.width, config.decoder_features) for s in specs})

    def forward_features(self, pixel_values: torch.Tensor) -> BackboneOutput:
        maps = self.encoder(pixel_values)
        grid = (pixel_values.shape[-2] // PATCH, pixel_values.shape[-1] // PATCH)
        fine = F.pixel_unshuffle(self.fusion(maps), PATCH // 4)
        raw = [fine, F.pixel_unshuffle(maps[1], 2), maps[2], F.interpolate(maps[3], size=grid, mode="nearest")]
        levels = [project(x) for project, x in zip(self.levels, raw)]
        tokens = self.norm(levels[2].flatten(2).transpose(1, 2))
        cls = tokens.mean(dim=1, keepdim=True)
        return BackboneOutput(torch.cat([cls, tokens], dim=1), grid, 1, dict(enumerate(levels)))

    def task_spec(self, task: str) -> TaskSpec:
        if task not in self.task_specs:
            raise ValueError(f"task {task!r} is not one of the partner's tasks: {', '.join(self.task_ids)}")
        return self.task_specs[task]

    def forward(self, pixel_values: torch.Tensor, task: str) -> TaskOutput:
        self.task_spec(task)
        features = self.forward_features(pixel_values)
        levels = [features.intermediates[i] for i in range(4)]
        return self.heads[task](features, levels, task, tuple(pixel_values.shape[-2:]))

    def loss(self, output: TaskOutput, targets) -> torch.Tensor:
        return self.heads[output.task].loss(output, targets)

    # The inference interface `m2dino.training.validation.evaluate_model` uses.
    def preprocess(self, images: Sequence[ImageLike]) -> tuple[torch.Tensor, list[ResizeGeometry]]:
        pixel_values, geometries = self.config.preprocessing(images)
        return pixel_values.to(next(self.parameters()).device), geometries

    def postprocess(self, output: TaskOutput, index: int, geometry: ResizeGeometry, top_n: int | None = None
                    ) -> Prediction:
        return self.heads[output.task].predict(output, index, geometry, self.task_specs[output.task], top_n)

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                  str(directory / WEIGHTS_FILE))
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "CNNPartner":
        directory = Path(directory)
        if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise FileNotFoundError(f"{directory}: not a saved CNN partner (expected {CONFIG_FILE} and {WEIGHTS_FILE})")
        config = PartnerConfig(**json.loads((directory / CONFIG_FILE).read_text()))
        model = cls(config)
        load_state_dict_checked(model, load_file(str(directory / WEIGHTS_FILE)), str(directory / WEIGHTS_FILE))
        return model.eval()


def is_partner_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder saved by `CNNPartner.save_pretrained` (e.g. ``runs/semi/partner``)."""
    config = Path(path) / CONFIG_FILE
    return config.is_file() and json.loads(config.read_text()).get("architecture") == "CNNPartner"
