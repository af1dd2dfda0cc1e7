"""Per-task transforms on `Sample`s: resize (letterbox or stretch) with an exact inverse, then the
augmentations the task's `TaskSpec` allows. Masks, boxes and keypoints move with the image.

The resize is described by a `ResizeGeometry` (original pixels -> model-input pixels). Training
augmentations are applied after it, in model-input pixels, as one affine map (flip, rotation,
scale about the centre) recorded in ``meta['augment_affine']``; evaluation transforms only
resize, so ``geometry`` maps predictions back to original pixels exactly.

`AugmentConfig.policy` picks the kind of augmentation: the steps below ("default"), or TrivialAugment
or the ultrasound-specific transforms (`m2dino.data.augment_policies`, on the training device only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image, ImageFilter

from ..image import Preprocessing, ResizeGeometry, resize_image
from ..tasks import TaskSpec, get_task
from .augment_policies import TRIVIAL_OPS, ULTRASOUND_OPS, TrivialAugment, UltrasoundArtifacts, allowed_ops
from .sample import Sample

SeedLike = int | np.random.Generator | None


POLICIES = ("default", "trivial", "ultrasound")
DEVICE_ONLY_POLICIES = ("trivial", "ultrasound")  # no numpy/PIL path: augment_on must be "device"


@dataclass(frozen=True)
class AugmentConfig:
    """What augmentation a training sample gets; a task only gets what its spec allows.

    ``policy``: "default", the flips, rotation, scale, gamma/gain, optional blur and speckle below;
    "trivial", the allowed flips then one TrivialAugment operation per image; "ultrasound", the
    default plus each ultrasound-specific transform with probability ``ultrasound_p``
    (`m2dino.data.augment_policies`; these two run on the training device only). ``strength``
    multiplies every magnitude: the rotation, the log-range of scale, gain and gamma, the speckle
    and blur sigmas, and each policy operation's maximum; probabilities stay as they are.
    """

    policy: str = "default"
    strength: float = 1.0
    hflip_p: float = 0.5
    vflip_p: float = 0.5
    rotate_deg: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    gain: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.8, 1.25)
    speckle_sigma: float = 0.15
    photometric_p: float = 0.8
    blur_sigma: float = 0.0  # Gaussian blur of up to this sigma (px), before the speckle; 0: none
    ultrasound_p: float = 0.5  # "ultrasound": each transform's probability (usaugment's default)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"augment.policy={self.policy!r}; expected one of {', '.join(POLICIES)}")
        for name in ("strength", "rotate_deg", "speckle_sigma", "blur_sigma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("hflip_p", "vflip_p", "photometric_p", "ultrasound_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("scale", "gain", "gamma"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"augment.{name} must be a range (low, high) with 0 < low <= high, got {(low, high)}")


def _stronger(low_high: tuple[float, float], strength: float) -> tuple[float, float]:
    """A multiplicative range widened (or narrowed) ``strength`` times in log space."""
    return (low_high[0] ** strength, low_high[1] ** strength)


class Step(Protocol):
    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample: ...


class SampleTransform:
    """Resize as ``preprocessing`` says, then ``steps`` in order. ``transform(sample, rng)`` -> (sample, geometry)."""

    def __init__(self, preprocessing: Preprocessing, steps: tuple[Step, ...] = ()) -> None:
        self.preprocessing, self.steps = preprocessing, tuple(steps)

    def __call__(self, sample: Sample, rng: SeedLike = None) -> tuple[Sample, ResizeGeometry]:
        geometry = self.preprocessing.geometry(sample.size)
        sample = resize_sample(sample, geometry)
        generator = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        for step in self.steps:
            sample = step(sample, generator)
        return sample, geometry

    def __repr__(self) -> str:
        steps = ", ".join(type(s).__name__ for s in self.steps)
        pre = self.preprocessing
        return f"SampleTransform(size={pre.image_size}, mode={pre.resize_mode!r}, steps=[{steps}])"


def build_transforms(task: str | TaskSpec, preprocessing: Preprocessing, train: bool,
                     augment: AugmentConfig | None = None) -> SampleTransform:
    """The pipeline for one task: resize to the model's input (``preprocessing``), plus, when
    ``train``, the augmentations of ``augment.policy`` that ``get_task(task).allows(...)``."""
    spec = get_task(task)
    if not train:
        return SampleTransform(preprocessing)
    config = augment or AugmentConfig()
    k = config.strength
    hflip_p = config.hflip_p if spec.allows("hflip") else 0.0
    vflip_p = config.vflip_p if spec.allows("vflip") else 0.0
    if config.policy == "trivial":  # the flips are the standard augmentation TrivialAugment comes on top of
        flips = RandomAffine(hflip_p=hflip_p, vflip_p=vflip_p)
        return SampleTransform(preprocessing, ((flips,) if flips.active else ())
                               + (TrivialAugment(allowed_ops(spec, tuple(TRIVIAL_OPS)), k),))
    steps: list[Step] = []
    affine = RandomAffine(hflip_p=hflip_p, vflip_p=vflip_p,
                          rotate_deg=config.rotate_deg * k if spec.allows("rotate") else 0.0,
                          scale=_stronger(config.scale, k) if spec.allows("scale") else (1.0, 1.0))
    if affine.active:
        steps.append(affine)
    if spec.allows("intensity"):
        steps.append(RandomIntensity(_stronger(config.gain, k), _stronger(config.gamma, k), config.photometric_p))
        if config.blur_sigma > 0:
            steps.append(RandomBlur(config.blur_sigma * k, config.photometric_p))
    if spec.allows("speckle"):
        steps.append(RandomSpeckle(config.speckle_sigma * k, config.photometric_p))
    ultrasound_ops = allowed_ops(spec, ULTRASOUND_OPS)
    if config.policy == "ultrasound" and ultrasound_ops:
        steps.append(UltrasoundArtifacts(ultrasound_ops, config.ultrasound_p, k))
    return SampleTransform(preprocessing, tuple(steps))


def resize_sample(sample: Sample, geometry: ResizeGeometry, resized_image: np.ndarray | None = None) -> Sample:
    """The sample on the model-input grid: image bilinear (antialiased), mask nearest, boxes and
    keypoints through ``geometry``; letterbox padding is 0 (and background for masks).
    ``resized_image``: the image already resized with ``geometry`` (another task of the same scan)."""
    image = resize_image(sample.image, geometry) if resized_image is None else resized_image
    label = sample.spec.label_kind.resize(sample.label, geometry)
    return Sample(image, sample.task, label, sample.original_size, sample.source, dict(sample.meta))


class RandomAffine:
    """Flips, a rotation and a scale about the image centre, as one affine map in pixel coordinates.

    Labels move through their kind's ``warp`` (`m2dino.tasks.label_kinds`): anatomical keypoints
    keep their order, interchangeable ones are renumbered by the task's rule; a rotated box becomes
    the axis-aligned box of its corners, clipped; a box pushed out of the image is dropped.
    """

    def __init__(self, hflip_p: float = 0.0, vflip_p: float = 0.0, rotate_deg: float = 0.0,
                 scale: tuple[float, float] = (1.0, 1.0)) -> None:
        self.hflip_p, self.vflip_p, self.rotate_deg, self.scale = hflip_p, vflip_p, rotate_deg, scale

    @property
    def active(self) -> bool:
        return self.hflip_p > 0 or self.vflip_p > 0 or self.rotate_deg > 0 or self.scale != (1.0, 1.0)

    def matrix(self, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """A random 3×3 map from input to output pixel coordinates for an image of ``size`` (H, W)."""
        fx = -1.0 if rng.random() < self.hflip_p else 1.0
        fy = -1.0 if rng.random() < self.vflip_p else 1.0
        theta = np.deg2rad(rng.uniform(-self.rotate_deg, self.rotate_deg))
        s = rng.uniform(*self.scale)
        cx, cy = size[1] / 2, size[0] / 2
        cos, sin = np.cos(theta) * s, np.sin(theta) * s
        linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([fx, fy])
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = [cx, cy] - linear @ [cx, cy]
        return matrix

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """This step's random parameters (the draw `m2dino.data.device_augment` shares)."""
        return {"matrix": self.matrix(size, rng)}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        matrix = self.matrix(sample.size, rng)
        return apply_affine(sample, matrix)


def apply_affine(sample: Sample, matrix: np.ndarray) -> Sample:
    """``sample`` warped by the 3×3 ``matrix`` (input -> output pixel coordinates), same size."""
    height, width = sample.size
    inverse = np.linalg.inv(matrix)[:2].ravel()  # PIL maps output pixels back to input pixels
    image = Image.fromarray(sample.image).transform((width, height), Image.Transform.AFFINE, tuple(inverse),
                                                   resample=Image.Resampling.BILINEAR)
    label = sample.spec.label_kind.warp(sample.label, matrix, (height, width))
    meta = dict(sample.meta)
    previous = meta.get("augment_affine")
    meta["augment_affine"] = matrix if previous is None else matrix @ previous
    return Sample(np.asarray(image), sample.task, label, sample.original_size, sample.source, meta)


class RandomIntensity:
    """Gamma then gain on the whole image (probe gain / dynamic range differ between machines)."""

    def __init__(self, gain: tuple[float, float], gamma: tuple[float, float], p: float = 1.0) -> None:
        self.gain, self.gamma, self.p = gain, gamma, p

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict[str, float]:
        """``gain`` and ``gamma``, or nothing when the sample is left alone (shared with the device path)."""
        if rng.random() >= self.p:
            return {}
        return {"gain": rng.uniform(*self.gain), "gamma": rng.uniform(*self.gamma)}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        drawn = self.draw(sample.size, rng)
        if not drawn:
            return sample
        image = 255.0 * drawn["gain"] * (sample.image / 255.0) ** drawn["gamma"]
        return sample.replace(image=np.clip(image + 0.5, 0, 255).astype(np.uint8))


class RandomSpeckle:
    """Multiplicative gamma noise of mean 1 and std ``sigma`` (speckle is multiplicative; the
    letterbox padding stays black)."""

    def __init__(self, sigma: float, p: float = 1.0) -> None:
        self.sigma, self.p = sigma, p

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict[str, float]:
        """The noise's ``speckle`` sigma, or nothing (shared with the device path, which draws the
        noise itself)."""
        if rng.random() >= self.p or self.sigma <= 0:
            return {}
        return {"speckle": rng.uniform(0.25, 1.0) * self.sigma}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        drawn = self.draw(sample.size, rng)
        if not drawn:
            return sample
        shape = 1.0 / drawn["speckle"]**2
        noise = rng.gamma(shape, 1.0 / shape, size=sample.size)[..., None]
        return sample.replace(image=np.clip(sample.image * noise + 0.5, 0, 255).astype(np.uint8))


class RandomBlur:
    """Gaussian blur of sigma in [0.25, 1] × ``sigma`` px (probes and settings differ in resolution)."""

    def __init__(self, sigma: float, p: float = 1.0) -> None:
        self.sigma, self.p = sigma, p

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict[str, float]:
        """The ``blur`` sigma, or nothing (shared with the device path)."""
        if rng.random() >= self.p or self.sigma <= 0:
            return {}
        return {"blur": rng.uniform(0.25, 1.0) * self.sigma}

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        drawn = self.draw(sample.size, rng)
        if not drawn:
            return sample
        image = Image.fromarray(sample.image).filter(ImageFilter.GaussianBlur(drawn["blur"]))
        return sample.replace(image=np.asarray(image))
