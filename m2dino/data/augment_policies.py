"""The augmentation policies beyond the default, draw side: what a DataLoader worker draws for each
sample (numpy, from the sample's seed); `m2dino.data.policy_ops` applies the draws batched on the
training device. Neither policy has a numpy/PIL path: they need ``augment_on="device"``.

``trivial``: TrivialAugment (Müller & Hutter, ICCV 2021): one operation per image, drawn uniformly
from `TRIVIAL_OPS`, at a magnitude drawn uniformly in [0, 1] (continuous, not TrivialAugment's 31
bins), with a random sign where the operation has one. The ranges at magnitude 1 are RandAugment's
(rotation 30°, shear 0.3, enhancement factors 0.1-1.9, posterize to 4 bits), translation 15 % of
the side (TrivialAugment-wide's 32 px at 224 px); the colour operation is left out (ultrasound is
gray: it would be a second identity). Geometric operations become part of the sample's one affine
map, so labels move with them as with the default policy's rotation.

``ultrasound``: the ultrasound-specific transforms evaluated by Tupper & Gagné ("Revisiting Data
Augmentation for Ultrasound Images", TMLR 2025), at the ranges of their ``usaugment`` package, each
with probability ``p``: depth attenuation (exponential decay with the distance from the probe at
the top centre), a Gaussian acoustic shadow, a haze band at a random depth, and speckle reduction
(a bilateral filter). Written here as batched torch ops rather than depending on ``usaugment``: its
transforms are numpy/scikit-image functions on one image for albumentations, so they could only run
in the workers, and each is a few lines.

``strength`` multiplies every magnitude (the maximum of each range). A task gets only the
operations its spec allows (`TaskSpec.allows`): see `OP_NEEDS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..tasks import TaskSpec
from .errors import DataError
from .sample import Sample

# Each drawn parameter of these policies and its identity value: every draw holds all of them
# (`device_augment.draw_parameters`), so a batch collates into one tensor per key.
POLICY_IDENTITY: dict[str, float] = {
    "brightness": 1.0, "contrast": 1.0, "sharpness": 1.0,  # enhancement factors (PIL's ImageEnhance)
    "posterize": 8.0, "solarize": 256.0,                     # bits kept; levels >= threshold inverted
    "autocontrast": 0.0, "equalize": 0.0,                    # 1: apply
    "attenuation": 0.0,                                      # decay rate per image height from the probe
    "shadow": 0.0, "shadow_x": 0.5, "shadow_y": 0.5, "shadow_sx": 0.1, "shadow_sy": 0.1,  # depth, centre, sigmas
    "haze": 0.0, "haze_radius": 0.5, "haze_sigma": 0.05,     # amplitude, band distance and width
    "bilateral_spatial": 0.0, "bilateral_color": 0.0,        # sigmas (px, intensity in [0, 1]); 0: none
}

ROTATE_DEG, SHEAR, TRANSLATE, ENHANCE, POSTERIZE_BITS = 30.0, 0.3, 0.15, 0.9, 4.0


def _about_centre(linear: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The 3×3 map applying ``linear`` (2×2) about the centre of an image of ``size`` (H, W)."""
    centre = np.array([size[1] / 2, size[0] / 2])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = centre - linear @ centre
    return matrix


def _rotate(m: float, size: tuple[int, int]) -> dict:
    theta = np.deg2rad(ROTATE_DEG * m)
    return {"matrix": _about_centre(np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]),
                                    size)}


def _translate(axis: int) -> Callable[[float, tuple[int, int]], dict]:
    def draw(m: float, size: tuple[int, int]) -> dict:
        matrix = np.eye(3)
        matrix[axis, 2] = TRANSLATE * m * size[1 - axis]  # axis 0: x, a fraction of the width
        return {"matrix": matrix}
    return draw


def _enhance(key: str) -> Callable[[float, tuple[int, int]], dict]:
    return lambda m, size: {key: max(0.0, 1.0 + ENHANCE * m)}


# name -> (signed magnitude, the parameters at magnitude m for an image of size (H, W))
TRIVIAL_OPS: dict[str, tuple[bool, Callable[[float, tuple[int, int]], dict]]] = {
    "identity": (False, lambda m, size: {}),
    "rotate": (True, _rotate),
    "shear_x": (True, lambda m, size: {"matrix": _about_centre(np.array([[1.0, SHEAR * m], [0.0, 1.0]]), size)}),
    "shear_y": (True, lambda m, size: {"matrix": _about_centre(np.array([[1.0, 0.0], [SHEAR * m, 1.0]]), size)}),
    "translate_x": (True, _translate(0)),
    "translate_y": (True, _translate(1)),
    "brightness": (True, _enhance("brightness")),
    "contrast": (True, _enhance("contrast")),
    "sharpness": (True, _enhance("sharpness")),
    "posterize": (False, lambda m, size: {"posterize": float(np.clip(8 - round(POSTERIZE_BITS * m), 1, 8))}),
    "solarize": (False, lambda m, size: {"solarize": float(np.clip(256 * (1 - m), 0, 256))}),
    "autocontrast": (False, lambda m, size: {"autocontrast": 1.0}),
    "equalize": (False, lambda m, size: {"equalize": 1.0}),
}

ULTRASOUND_OPS = ("depth_attenuation", "gaussian_shadow", "haze", "speckle_reduction")

# What a task must allow for each operation: shear changes angles and lengths, a translation
# reframes the view as a zoom does; speckle reduction changes the speckle, the others intensities.
OP_NEEDS: dict[str, frozenset[str]] = {
    "identity": frozenset(), "rotate": frozenset({"rotate"}), "shear_x": frozenset({"rotate", "scale"}),
    "shear_y": frozenset({"rotate", "scale"}), "translate_x": frozenset({"scale"}),
    "translate_y": frozenset({"scale"}),
    **dict.fromkeys(("brightness", "contrast", "sharpness", "posterize", "solarize", "autocontrast", "equalize",
                     "depth_attenuation", "gaussian_shadow", "haze"), frozenset({"intensity"})),
    "speckle_reduction": frozenset({"speckle"}),
}


def allowed_ops(spec: TaskSpec, names: Sequence[str]) -> tuple[str, ...]:
    """Those of ``names`` whose `OP_NEEDS` the task ``spec`` allows."""
    return tuple(name for name in names if all(spec.allows(need) for need in OP_NEEDS[name]))


class _DeviceOnly:
    """A step with no worker path: its draws are applied by `device_augment.augment_batch`."""

    policy = ""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        raise DataError(f"{sample.source}: augmentation policy {self.policy!r} runs on the training device only; "
                        "set augment_on='device' (data.augment_on in a run config)")


class TrivialAugment(_DeviceOnly):
    """One of ``ops`` (names in `TRIVIAL_OPS`) per sample at a uniform magnitude × ``strength``."""

    policy = "trivial"

    def __init__(self, ops: Sequence[str] = tuple(TRIVIAL_OPS), strength: float = 1.0) -> None:
        unknown = sorted(set(ops) - set(TRIVIAL_OPS))
        if unknown or not ops:
            raise ValueError(f"TrivialAugment ops: expected names from {list(TRIVIAL_OPS)}, got {list(ops)}")
        self.ops, self.strength = tuple(ops), strength

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict:
        """The chosen operation's parameters (always three numbers from ``rng``: operation, magnitude, sign)."""
        name = self.ops[int(rng.integers(len(self.ops)))]
        magnitude, negative = rng.uniform(0.0, 1.0), rng.random() < 0.5
        signed, parameters = TRIVIAL_OPS[name]
        return parameters(magnitude * self.strength * (-1.0 if signed and negative else 1.0), size)

    def __repr__(self) -> str:
        return f"TrivialAugment({len(self.ops)} ops, strength={self.strength})"


class UltrasoundArtifacts(_DeviceOnly):
    """Each of ``ops`` (names in `ULTRASOUND_OPS`) with probability ``p``, at ``usaugment``'s ranges
    with their maxima × ``strength``."""

    policy = "ultrasound"

    def __init__(self, ops: Sequence[str] = ULTRASOUND_OPS, p: float = 0.5, strength: float = 1.0) -> None:
        unknown = sorted(set(ops) - set(ULTRASOUND_OPS))
        if unknown:
            raise ValueError(f"UltrasoundArtifacts ops: expected names from {list(ULTRASOUND_OPS)}, got {list(ops)}")
        self.ops, self.p, self.strength = tuple(ops), p, strength

    def draw(self, size: tuple[int, int], rng: np.random.Generator) -> dict:
        k, drawn = self.strength, {}
        for name in self.ops:
            if rng.random() >= self.p:
                continue
            if name == "depth_attenuation":
                drawn["attenuation"] = rng.uniform(0.0, 3.0 * k)
            elif name == "gaussian_shadow":
                drawn.update(shadow=min(1.0, rng.uniform(0.25, 0.8) * k), shadow_x=rng.uniform(),
                             shadow_y=rng.uniform(), shadow_sx=rng.uniform(0.01, 0.2), shadow_sy=rng.uniform(0.01, 0.2))
            elif name == "haze":
                drawn.update(haze=0.5 * k, haze_radius=rng.uniform(0.05, 0.95), haze_sigma=rng.uniform(0.0, 0.1),
                             haze_seed=int(rng.integers(0, 2**63 - 1)))
            else:
                drawn.update(bilateral_spatial=rng.uniform(0.1, 2.0), bilateral_color=rng.uniform(0.0, 1.0) * k)
        return drawn

    def __repr__(self) -> str:
        return f"UltrasoundArtifacts({', '.join(self.ops)}, p={self.p}, strength={self.strength})"
