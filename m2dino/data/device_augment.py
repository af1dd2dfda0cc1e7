"""Training augmentation on the training device: the random geometry and intensity of
`m2dino.data.transforms`, batched as torch ops in float32 (the same code on a CPU).

Split of the work:

- a DataLoader worker reads, decodes and resizes (uint8, the model's input size) and, instead of
  augmenting, runs `DrawParameters`: the task's own steps (`transforms.RandomAffine` ... ``.draw``)
  draw the sample's parameters from its seed (`torch_dataset.SampleKey.seed`), so both paths sample
  the same distributions and a batch depends only on its seeds (0 or 8 workers, a resumed run:
  bit-identical);
- `Collate` stacks the uint8 pixels (one channel when the batch is gray, as most scans are) and the
  draws (`collate_parameters`);
- `augment_batch`, on the training device: the affine map (image bilinear and mask nearest, as PIL
  samples them in the worker path), gamma then gain (one lookup per pixel in a 256-entry table per
  sample, at the uint8 values the worker path truncates to there, instead of a power per pixel),
  blur, speckle (each sample's noise from its own generator), then the model's normalisation, in
  float32 from the table on (the worker path rounds to uint8 after every step). The operations of
  the other policies (`augment_policies`: TrivialAugment, the ultrasound transforms) run here too,
  from `policy_ops`: their level maps join the same table, then sharpness, blur, attenuation and
  shadow, speckle reduction, haze, speckle.

Labels move through `LABEL_WARPS`, one entry per label kind that moves (keyed by the kind's name),
with the rules of that kind's numpy ``warp`` (`m2dino.tasks.label_kinds`): a mask is resampled
nearest; a box becomes the axis-aligned box of its moved corners, clipped, and is dropped when
nothing of it is left; keypoints move and interchangeable ones are renumbered (the kind's order
rule). Boxes and keypoints are a few numbers: they move in float64 on the host, where the collated
targets are (equal to the numpy path to rounding, no device sync for dropped boxes, and devices
without float64 work too), and go to the device afterwards.

Which path is faster is measured in ``benchmarks/feed_parts/augment.py``; see `LoaderConfig`'s
``augment_on`` for the default it chose.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..image import Preprocessing
from ..tasks import LabelKind, get_task
from . import policy_ops
from .augment_policies import POLICY_IDENTITY
from .sample import Sample

DRAW_KEY = "augment"  # a sample's meta entry holding its drawn parameters, between worker and Collate
# Every draw holds these; a step that did not fire leaves its identity value.
IDENTITY = {"gain": 1.0, "gamma": 1.0, "blur": 0.0, "speckle": 0.0, **POLICY_IDENTITY}
SEEDS = ("noise_seed", "haze_seed")  # per-sample generator seeds (int64)

Targets = torch.Tensor | list[torch.Tensor]


def draw_parameters(steps: Sequence[Any], size: tuple[int, int], rng: np.random.Generator) -> dict[str, Any]:
    """The random parameters of ``steps`` for an image of ``size`` (H, W), drawn in the order the
    worker path draws them, plus ``noise_seed`` for the speckle's noise field. The steps' affine
    maps compose into the one ``matrix`` (a later step's map applies after an earlier one's)."""
    drawn: dict[str, Any] = {"matrix": np.eye(3), **IDENTITY, "haze_seed": 0}
    for step in steps:
        parameters = step.draw(size, rng)
        if "matrix" in parameters:
            parameters = {**parameters, "matrix": parameters["matrix"] @ drawn["matrix"]}
        drawn.update(parameters)
    drawn["noise_seed"] = int(rng.integers(0, 2**63 - 1))
    return drawn


class DrawParameters:
    """The step a worker runs instead of ``steps`` when augmenting on the device: the sample is left
    as it is, its parameters are drawn (`draw_parameters`) into ``meta['augment']``, and the affine
    map is recorded in ``meta['augment_affine']`` as the worker path records it."""

    def __init__(self, steps: Sequence[Any]) -> None:
        self.steps = tuple(steps)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        drawn = draw_parameters(self.steps, sample.size, rng)
        meta = dict(sample.meta)
        previous = meta.get("augment_affine")
        meta["augment_affine"] = drawn["matrix"] if previous is None else drawn["matrix"] @ previous
        meta[DRAW_KEY] = drawn
        drawn_sample = copy.copy(sample)  # image and label unchanged: no need to validate them again
        drawn_sample.meta = meta
        return drawn_sample

    def __repr__(self) -> str:
        return f"DrawParameters([{', '.join(type(s).__name__ for s in self.steps)}])"


def collate_parameters(draws: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """A batch's draws as tensors: ``matrix`` float64 B×3×3, each key of `IDENTITY` float64 B, each
    of `SEEDS` int64 B."""
    out = {"matrix": torch.from_numpy(np.stack([d["matrix"] for d in draws]).astype(np.float64))}
    for key in IDENTITY:
        out[key] = torch.tensor([float(d[key]) for d in draws], dtype=torch.float64)
    for key in SEEDS:
        out[key] = torch.tensor([d[key] for d in draws], dtype=torch.int64)
    return out


# ----------------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class BatchAffine:
    """One affine map per sample (input -> output pixels, float64 on the host) onto images of
    ``size`` (H, W), and where each output pixel's centre comes from: ``grid``, float32 B×H×W×2,
    the source point in `torch.nn.functional.grid_sample`'s coordinates (-1 and 1 are the input's
    outer edges), on the device."""

    matrices: torch.Tensor
    size: tuple[int, int]
    grid: torch.Tensor

    @classmethod
    def create(cls, matrices: torch.Tensor, size: tuple[int, int], device: torch.device) -> "BatchAffine":
        height, width = size
        to_grid = torch.tensor([[2 / width, 0, -1], [0, 2 / height, -1]], dtype=torch.float64)
        # output pixel centre -> input pixels -> grid coordinates, as one 2×3 map per sample
        maps = (to_grid @ torch.linalg.inv(matrices)).to(device, torch.float32)
        ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
        xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
        centres = torch.stack([xs.expand(height, width), ys[:, None].expand(height, width),
                               torch.ones(height, width, device=device)], dim=-1)  # H×W×3
        return cls(matrices, size, torch.einsum("hwk,bjk->bhwj", centres, maps))


def warp_images(images: torch.Tensor, affine: BatchAffine) -> torch.Tensor:
    """float B×C×H×W through ``affine``: bilinear between pixel centres, edge pixels repeated within
    the image and 0 outside it (PIL's ``Image.transform(..., BILINEAR)``, without its rounding)."""
    warped = F.grid_sample(images, affine.grid, mode="bilinear", padding_mode="border", align_corners=False)
    x, y = affine.grid.unbind(-1)
    inside = (x >= -1) & (x < 1) & (y >= -1) & (y < 1)
    return warped * inside[:, None]


def warp_masks(masks: torch.Tensor, affine: BatchAffine) -> torch.Tensor:
    """Integer B×H×W through ``affine``: each output pixel takes the class of the input pixel that
    contains its source point, 0 (background) outside, as PIL's NEAREST. They may differ only where
    a source point lies within ~1e-3 px of a pixel edge: PIL's affine NEAREST computes in 16.16
    fixed point, and a point exactly on an edge is rounded to even here, floored there."""
    warped = F.grid_sample(masks[:, None].to(affine.grid.device, torch.float32), affine.grid, mode="nearest",
                           padding_mode="zeros", align_corners=False)
    return warped[:, 0].to(masks.dtype)


def _map_points(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Points (B×…×2) through each sample's 3×3 map (`label_kinds.map_points`, batched)."""
    linear, shift = matrices[:, :2, :2], matrices[:, :2, 2]
    flat = points.reshape(len(points), -1, 2)
    return (flat @ linear.transpose(1, 2) + shift[:, None]).reshape(points.shape)


def _warp_mask_targets(kind: LabelKind, targets: torch.Tensor, affine: BatchAffine) -> torch.Tensor:
    return warp_masks(targets, affine)


def warp_boxes(kind: LabelKind, targets: Sequence[torch.Tensor], affine: BatchAffine) -> list[torch.Tensor]:
    """Each sample's n×4 boxes (`BoxesKind.warp`'s rule): the box of the moved corners, clipped to
    the image, dropped when empty. All boxes of the batch move in one matmul."""
    height, width = affine.size
    counts = [len(t) for t in targets]
    boxes = torch.cat([t.reshape(-1, 4) for t in targets]).to(torch.float64)
    owner = torch.repeat_interleave(torch.arange(len(targets)), torch.tensor(counts, dtype=torch.long))
    corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(-1, 4, 2)
    moved = _map_points(affine.matrices[owner], corners)
    out = torch.cat([moved.amin(dim=1), moved.amax(dim=1)], dim=1)
    out = torch.minimum(out.clamp(min=0), torch.tensor([width, height, width, height], dtype=torch.float64))
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return [part[kept].to(torch.float32) for part, kept in zip(out.split(counts), keep.split(counts))]


def warp_keypoints(kind: LabelKind, targets: torch.Tensor, affine: BatchAffine) -> torch.Tensor:
    """B×K×2 points through each map; interchangeable points renumbered by ascending x, then y
    (`KeypointsKind.canonical`)."""
    points = _map_points(affine.matrices, targets.to(torch.float64))
    if kind.spec.interchangeable_points:
        for axis in (1, 0):  # two stable sorts: by y, then by x (x decides, ties by y: np.lexsort's order)
            order = points[..., axis].argsort(dim=-1, stable=True)
            points = points.gather(1, order[..., None].expand_as(points))
    return points.to(torch.float32)


# How each label kind's targets move through a batch's affine maps; kinds not listed do not move.
LABEL_WARPS: dict[str, Callable[[LabelKind, Any, BatchAffine], Any]] = {
    "mask": _warp_mask_targets, "boxes": warp_boxes, "keypoints": warp_keypoints}


# ---------------------------------------------------------------------------------- intensity
def intensity_tables(gain: torch.Tensor, gamma: torch.Tensor, levels: torch.Tensor | None = None) -> torch.Tensor:
    """B×256 float32: each uint8 value's intensity in [0, 1] after gamma then gain (one table per
    sample: `transforms.RandomIntensity`'s map, without its rounding), after ``levels`` (B×256 in
    [0, 255], the policies' level maps, `policy_ops.level_maps`) when given."""
    values = torch.arange(256, dtype=torch.float64) / 255.0 if levels is None else levels / 255.0
    return (gain[:, None] * values.pow(gamma[:, None])).clamp(0, 1).to(torch.float32)


def lookup(images: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """float B×C×H×W of values in [0, 255], truncated to integers as PIL's bilinear warp does in the
    worker path, through each sample's 256-entry table."""
    batch = len(images)
    offsets = 256 * torch.arange(batch, device=images.device).view(batch, 1, 1, 1)
    return torch.take(tables.to(images.device), policy_ops.whole_levels(images).add_(offsets))


def blur_images(images: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Each image blurred by a Gaussian of its own sigma (px; 0 leaves it as it is), separable,
    edges repeated as PIL's ``GaussianBlur`` does."""
    batch, channels, height, width = images.shape
    radius = max(1, math.ceil(3 * float(sigmas.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    safe = sigmas.clamp(min=1e-6)[:, None]
    kernels = torch.exp(-0.5 * (offsets / safe) ** 2)
    kernels = torch.where(sigmas[:, None] > 0, kernels, (offsets == 0).to(torch.float64).expand_as(kernels))
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).to(images.device, images.dtype)
    weight = kernels.repeat_interleave(channels, dim=0)[:, None]  # (B·C)×1×k
    flat = images.reshape(1, batch * channels, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), weight[:, :, None, :],
                    groups=batch * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), weight[:, :, :, None],
                    groups=batch * channels)
    return flat.view(batch, channels, height, width)


def speckle_noise(sigmas: torch.Tensor, seeds: torch.Tensor, size: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    """B×1×H×W multiplicative noise of mean 1 and std ``sigmas[b]`` (1 where the sigma is 0), each
    sample's from a generator of its own seeded by ``seeds[b]``.

    `transforms.RandomSpeckle` draws gamma noise of shape k = 1/sigma² (44 at the default's largest
    sigma, 0.15). Here it is the proposal of Marsaglia and Tsang's gamma sampler, d·(1 + z/√(9d))³ / k
    with d = k − 1/3 and z normal, without its rejection step: that step rejects 0.07 % of draws at
    k = 44, 0.26 % at sigma 0.3 (strength 2), 0.8 % at sigma 0.5, so the two distributions agree to
    that, and the noise is a few batched ops on normal numbers."""
    noise = torch.empty(len(sigmas), 1, *size, device=device)
    for index, (sigma, seed) in enumerate(zip(sigmas.tolist(), seeds.tolist())):
        if sigma > 0:
            generator = torch.Generator(device=device)
            generator.manual_seed(seed)
            noise[index].normal_(generator=generator)
        else:
            noise[index].zero_()  # scale 0 below: a factor of exactly 1
    active = sigmas > 0
    shape = 1.0 / sigmas.clamp(min=1e-3) ** 2
    d = shape - 1.0 / 3.0
    scale = torch.where(active, 1.0 / torch.sqrt(9.0 * d), 0.0).to(device, torch.float32).view(-1, 1, 1, 1)
    factor = torch.where(active, d / shape, 1.0).to(device, torch.float32).view(-1, 1, 1, 1)
    return noise.mul_(scale).add_(1.0).pow_(3).mul_(factor)


def augment_batch(batch: dict, device: torch.device | str, preprocessing: Preprocessing) -> tuple[torch.Tensor,
                                                                                                 Targets]:
    """A device-augmented batch (``batch['pixel_values']`` uint8 B×H×W×3, or ×1 for gray images,
    ``batch['augment']`` its draws) -> (normalised float32 B×3×H×W pixels, targets), both on ``device``."""
    device = torch.device(device)
    drawn = batch[DRAW_KEY]
    kind = get_task(batch["task"]).label_kind
    images = batch["pixel_values"].to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    size = (images.shape[-2], images.shape[-1])
    targets = batch["targets"]
    matrices = drawn["matrix"]
    if not torch.equal(matrices, torch.eye(3, dtype=matrices.dtype).expand_as(matrices)):
        affine = BatchAffine.create(matrices, size, device)
        images = warp_images(images, affine)
        warp = LABEL_WARPS.get(kind.name)
        if warp is not None:
            targets = warp(kind, targets, affine)
    histograms = policy_ops.level_histograms(images) if policy_ops.needs_histograms(drawn) else None
    levels = policy_ops.level_maps(drawn, histograms)
    images = lookup(images, intensity_tables(drawn["gain"], drawn["gamma"], levels))  # now in [0, 1]
    spatial = policy_ops.spatial_rows(drawn)
    scan = policy_ops.scan_region(images, spatial.to(device)) if len(spatial) else None
    if scan is not None:
        images = policy_ops.sharpen(images, drawn["sharpness"], scan)
    if bool((drawn["blur"] > 0).any()):
        images = blur_images(images, drawn["blur"])
    factors = policy_ops.attenuation_and_shadow(drawn, size, device)
    if factors is not None:
        images = images * factors
    if scan is not None:
        images = policy_ops.bilateral(images, drawn["bilateral_spatial"], drawn["bilateral_color"], scan)
        images = policy_ops.haze(images, drawn, scan)
    if bool((drawn["speckle"] > 0).any()):
        images = images.mul_(speckle_noise(drawn["speckle"], drawn["noise_seed"], size, device)).clamp_(0, 1)
    scale = torch.tensor([1 / s for s in preprocessing.std], device=device).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(preprocessing.mean, preprocessing.std)], device=device)
    # (x - mean) / std; on an explicit 3-channel view, which torch's CPU kernels broadcast far faster
    pixels = images.expand(-1, 3, -1, -1).mul(scale).add_(shift.view(1, 3, 1, 1))
    return pixels, _on_device(targets, device)


def _on_device(targets: Targets, device: torch.device) -> Targets:
    if isinstance(targets, torch.Tensor):
        return targets.to(device, non_blocking=True)
    return [t.to(device, non_blocking=True) for t in targets]
