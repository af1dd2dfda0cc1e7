"""What m2dino refuses to allocate: one policy for every reader, every config and every CLI size.

A model folder, a data root, a submission and an upload come from strangers. Each size they can
set is checked here, before anything is allocated, against a bound far above any real use: an
ultrasound frame is at most a few megapixels, a DINOv3 ViT-7B has 40 blocks of width 4,096, the
published MoE ViTs use at most a few hundred experts. A bound is raised with an environment variable
(``M2DINO_MAX_IMAGE_PIXELS=100000000``), named in every refusal.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields


class LimitError(ValueError):
    """A size beyond the policy's bound; the message names the input, the value and the bound."""


@dataclass(frozen=True)
class Limits:
    # a decoded image (5,000 × 5,000, 75 MB as uint8 RGB): m2dino predict --all on one at this bound peaks 1.3 GB
    # above the process's own 1 GB (40 M pixels took 2.1 GB); ultrasound frames are at most a few megapixels
    image_pixels: int = 25_000_000
    upload_bytes: int = 32 * 2**20      # a file sent to the demo
    experts: int = 512                  # MoE experts per block
    blocks: int = 64                    # backbone depth
    width: int = 8192                   # embed dim, MLP hidden size, decoder features, heads
    # model input height / width: DINOv3 runs at 224-1,024 px; a 4,096 px input made predict peak at 2.9 GB on
    # the smallest backbone, past the ~2 GB this policy allows beyond the model's own weights
    input_side: int = 2048
    tile_width: int = 8192              # m2dino predict --tile-width (pixels of an overlay panel)
    # m2dino predict's overlay PNG, all task tiles together (600 MB as RGB): a tall, narrow scan scaled to a
    # wide tile, or every task of a large scan at its own size, is refused instead of drawn
    panel_pixels: int = 200_000_000
    batch_size: int = 4096
    synthetic_side: int = 4096          # m2dino data synth --size
    registers: int = 64                 # backbone register tokens: DINOv3 uses 4, the registers paper at most 16

    @classmethod
    def from_environment(cls) -> Limits:
        """The defaults, each replaced by ``M2DINO_MAX_<FIELD>`` when that variable is set."""
        values = {}
        for field in fields(cls):
            text = os.environ.get(environment_variable(field.name))
            if text is not None:
                try:
                    values[field.name] = int(text)
                except ValueError:
                    raise LimitError(f"{environment_variable(field.name)}={text!r}: expected a whole number") from None
        return cls(**values)


def environment_variable(field: str) -> str:
    return f"M2DINO_MAX_{field.upper()}"


def current() -> Limits:
    """The limits in force (read from the environment at each call, so a test or a server can set them)."""
    return Limits.from_environment()


def check_bound(what: str, value: int, field: str) -> int:
    """``value`` if it is at most the ``field`` bound, else one error naming ``what`` and the way to raise it."""
    bound = getattr(current(), field)
    if value > bound:
        raise LimitError(f"{what}={value:,} exceeds m2dino's limit of {bound:,} (raise it with "
                         f"{environment_variable(field)} if this is intended)")
    return value


def check_image_pixels(width: int, height: int, source: str) -> None:
    """Refuse an image whose decoded size exceeds the bound, before it is decoded."""
    bound = current().image_pixels
    if width * height > bound:
        raise LimitError(f"{source}: {width}×{height} image ({width * height:,} pixels) exceeds m2dino's limit of "
                         f"{bound:,} pixels (raise it with {environment_variable('image_pixels')} if intended)")


def positive_int(what: str, value: int, field: str | None = None) -> int:
    """An integer ≥ 1 (and within the ``field`` bound when given), else one error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LimitError(f"{what}={value!r}: expected a whole number >= 1")
    return check_bound(what, value, field) if field else value


def finite_number(what: str, value: float, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number in [low, high], else one error naming ``what``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
            or not low <= value <= high:
        span = f" in [{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
        raise LimitError(f"{what}={value!r}: expected a finite number{span}")
    return float(value)
