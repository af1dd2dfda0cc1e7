"""`Recipe`: how one task's synthetic images are made (probe, scene, rendering style)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..sample import Label
from .fov import Probe
from .shapes import Canvas

CONVEX = Probe("sector", half_angle_deg=35.0, apex=0.3)
WIDE_CONVEX = Probe("sector", half_angle_deg=42.0, apex=0.18)
TRANSVAGINAL = Probe("sector", half_angle_deg=60.0, apex=0.04, near=0.03)
PHASED = Probe("sector", half_angle_deg=40.0, apex=0.0, near=0.03)
LINEAR = Probe("linear", margin=0.03)


@dataclass(frozen=True)
class Recipe:
    """``draw(canvas, class_index)`` paints the scene and returns the label (``class_index`` is the
    class to draw for classification tasks, ignored otherwise). The rest sets the look."""

    probe: Probe
    draw: Callable[[Canvas, int], Label]
    grain: float = 1.0
    attenuation: float = 1.2
    gain: float = 1.0
