"""Organs and backgrounds shared by several synthetic tasks, drawn on a `Canvas`.

Each helper paints echogenicity and returns the mask of what it drew, so the tasks can derive
their labels (masks, boxes, landmarks) from exactly what is visible.
"""

from __future__ import annotations

import numpy as np

from ..ellipse import Ellipse
from .shapes import Canvas

FLUID, FAT, TISSUE, GLAND, BONE = 0.05, 0.25, 0.45, 0.7, 1.4


def obstetric_background(c: Canvas) -> None:
    """Maternal abdominal wall on top, amniotic fluid, uterine wall at the bottom."""
    c.layers([0.6, 0.35, FLUID], [0.05, 0.12], wobble=0.02)
    wall = c.fov.axial + 0.03 * np.sin(c.xx / c.w * 6 + c.rng.uniform(0, 6)) > c.rng.uniform(0.86, 0.93)
    c.paint(wall, 0.55, texture=0.2)


def soft_tissue_background(c: Canvas, level: float = TISSUE, vessels: int = 0) -> None:
    """Homogeneous parenchyma (liver, uterus, pelvis) with a few dark vessels."""
    c.layers([0.7, 0.3, level], [0.04, 0.1], wobble=0.01)
    for _ in range(vessels):
        p0 = c.at(c.rng.uniform(-0.9, 0.9), c.rng.uniform(0.2, 0.95))
        p1 = c.at(c.rng.uniform(-0.9, 0.9), c.rng.uniform(0.2, 0.95))
        c.paint(c.capsule(p0, p1, c.px(c.rng.uniform(0.008, 0.02))), FLUID * 2)


def fetal_head(c: Canvas, ellipse: Ellipse) -> np.ndarray:
    """Skull (a bright ring), brain, and the midline echo; returns the filled head."""
    e = ellipse
    head = c.ellipse(e.cx, e.cy, e.a, e.b, e.angle)
    skull = max(1.5, 0.08 * e.b)
    brain = c.ellipse(e.cx, e.cy, e.a - skull, e.b - skull, e.angle)
    c.paint(head, BONE)
    c.paint(brain, 0.3, texture=0.25)
    dx, dy = 0.75 * e.a * np.cos(e.angle), 0.75 * e.a * np.sin(e.angle)
    c.paint(c.capsule((e.cx - dx, e.cy - dy), (e.cx + dx, e.cy + dy), max(0.7, 0.02 * e.b)) & brain, 0.9)
    return c.within(head)


def random_head(c: Canvas, size: float = 0.28, round_: bool = False) -> Ellipse:
    """A head ellipse placed inside the field of view."""
    cx, cy = c.at(c.rng.uniform(-0.3, 0.3), c.rng.uniform(0.4, 0.6))
    b = c.px(size * c.rng.uniform(0.8, 1.1))
    a = b * (c.rng.uniform(1.0, 1.1) if round_ else c.rng.uniform(1.15, 1.4))
    return Ellipse(cx, cy, a, b, c.rng.uniform(-0.6, 0.6))


def breast_lesion(c: Canvas, malignant: bool, at: tuple[float, float] | None = None) -> np.ndarray:
    """Benign: oval, smooth, wider than tall, posterior enhancement. Malignant: irregular,
    spiculated, taller than wide, posterior shadow (the BI-RADS descriptors)."""
    cx, cy = at or c.at(c.rng.uniform(-0.4, 0.4), c.rng.uniform(0.35, 0.6))
    r = c.px(c.rng.uniform(0.09, 0.15))
    if malignant:
        mask = c.blob(cx, cy, r, irregularity=0.4, harmonics=5, aspect=0.75, spikes=0.35)
        c.paint(mask, 0.1)
        c.shadow(mask, strength=0.5)  # soft-tissue shadowing: weaker than bone's
    else:
        mask = c.blob(cx, cy, r, irregularity=0.08, harmonics=2, aspect=c.rng.uniform(1.4, 1.8),
                      angle=c.rng.uniform(-0.2, 0.2))
        c.paint(mask, 0.16)
        c.enhance(mask)
    return c.within(mask)


def vessel(c: Canvas, cx: float, cy: float, r: float, aspect: float = 1.0) -> np.ndarray:
    """A vessel in cross-section: anechoic lumen, bright wall, posterior enhancement."""
    wall = c.ellipse(cx, cy, r * aspect + 1.2, r + 1.2)
    lumen = c.ellipse(cx, cy, r * aspect, r)
    c.paint(wall, 1.0)
    c.paint(lumen, 0.03)
    c.enhance(lumen)
    return c.within(lumen)


def marker_at(c: Canvas, cx: float, cy: float, radius: float, angle: float, r: float) -> np.ndarray:
    """A small disc ``radius`` pixels from (cx, cy) in direction ``angle`` (0 = right, y down)."""
    return c.ellipse(cx + radius * np.cos(angle), cy + radius * np.sin(angle), r, r)
