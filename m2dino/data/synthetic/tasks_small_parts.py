"""Synthetic recipes of the linear-probe tasks: breast, thyroid, carotid, nerves and vessels."""

from __future__ import annotations

import numpy as np

from ..labels import box_of_mask
from .anatomy import FAT, GLAND, breast_lesion, vessel
from .recipe import LINEAR, Recipe
from .shapes import Canvas


def _breast(c: Canvas) -> None:
    """Skin, subcutaneous fat with darker lobules, fibroglandular tissue, pectoral muscle."""
    c.layers([0.95, FAT, GLAND, 0.35], [0.035, 0.2, 0.68])
    for _ in range(int(c.rng.integers(2, 5))):
        x, y = c.at(c.rng.uniform(-0.9, 0.9), c.rng.uniform(0.08, 0.17))
        c.paint(c.ellipse(x, y, c.px(0.08), c.px(0.035)), 0.18)


def breast_lesion_seg(c: Canvas, _: int) -> np.ndarray:
    _breast(c)
    return breast_lesion(c, malignant=bool(c.rng.random() < 0.5)).astype(np.uint8)


def breast_lesion_det(c: Canvas, _: int) -> np.ndarray:
    _breast(c)
    return box_of_mask(breast_lesion(c, malignant=bool(c.rng.random() < 0.5)))


def breast_two_classes(c: Canvas, cls: int) -> int:
    """0 benign, 1 malignant."""
    _breast(c)
    breast_lesion(c, malignant=cls == 1)
    return cls


def breast_three_classes(c: Canvas, cls: int) -> int:
    """0 normal (no lesion), 1 benign, 2 malignant."""
    _breast(c)
    if cls:
        breast_lesion(c, malignant=cls == 2)
    return cls


def _thyroid(c: Canvas) -> np.ndarray:
    """Transverse neck: strap muscles, a thyroid lobe, the trachea (bright arc, shadow) on one side,
    the carotid on the other, and a hypoechoic nodule in the lobe. Returns the nodule."""
    c.layers([0.9, 0.3, 0.38], [0.03, 0.2])
    side = 1 if c.rng.random() < 0.5 else -1
    lx, ly = c.at(c.rng.uniform(-0.15, 0.15), c.rng.uniform(0.45, 0.55))
    lobe = c.blob(lx, ly, c.px(0.22), irregularity=0.08, aspect=1.6)
    c.paint(lobe, GLAND, texture=0.1)
    tx, ty = c.at(side * 0.85, 0.45)
    trachea = c.ring(tx, ty, c.px(0.12), c.px(0.12), 0.0, c.px(0.03)) & (c.yy < ty)
    c.paint(trachea, 1.2)
    c.shadow(trachea)
    vessel(c, *c.at(-side * 0.72, 0.55), c.px(0.08))
    nx, ny = lx + c.rng.uniform(-0.5, 0.5) * c.px(0.22), ly + c.rng.uniform(-0.3, 0.3) * c.px(0.12)
    nodule = c.blob(nx, ny, c.px(c.rng.uniform(0.06, 0.1)), irregularity=0.15, aspect=c.rng.uniform(0.8, 1.4))
    c.paint(nodule, 0.2, texture=0.3)
    if c.rng.random() < 0.4:  # microcalcifications
        for _ in range(3):
            c.paint(c.ellipse(nx + c.rng.normal(0, 2), ny + c.rng.normal(0, 2), 0.8, 0.8), 1.3)
    return c.within(nodule)


def thyroid_nodule(c: Canvas, _: int) -> np.ndarray:
    return _thyroid(c).astype(np.uint8)


def thyroid_nodule_det(c: Canvas, _: int) -> np.ndarray:
    return box_of_mask(_thyroid(c))


def thyroid_tirads(c: Canvas, cls: int) -> int:
    """TI-RADS 2 .. 5 (classes 0 .. 5): the nodule darker, and from 4b on with microcalcifications,
    as the category rises."""
    nodule = _thyroid(c)
    c.paint(nodule, (0.55, 0.45, 0.35, 0.25, 0.18, 0.12)[cls], texture=0.3)
    ys, xs = np.nonzero(nodule)
    for _ in range(2 * max(cls - 2, 0) if len(xs) else 0):
        k = int(c.rng.integers(len(xs)))
        c.paint(c.ellipse(xs[k] + 0.5, ys[k] + 0.5, 0.8, 0.8), 1.3)
    return cls


def carotid_artery(c: Canvas, _: int) -> np.ndarray:
    """Carotid in cross-section (round, anechoic, bright wall) beside the flatter jugular vein."""
    c.layers([0.9, 0.32, 0.45], [0.03, 0.3])
    cx, cy = c.at(c.rng.uniform(-0.3, 0.3), c.rng.uniform(0.45, 0.6))
    r = c.px(c.rng.uniform(0.1, 0.14))
    jugular_x = cx + (1 if c.rng.random() < 0.5 else -1) * 2.2 * r
    c.paint(c.ellipse(jugular_x, cy - 0.8 * r, 1.4 * r, 0.55 * r, c.rng.uniform(-0.2, 0.2)), 0.14)
    return vessel(c, cx, cy, r).astype(np.uint8)


def nerve_vessel(c: Canvas, _: int) -> np.ndarray:
    """Striated muscle, a nerve (honeycomb: bright with dark fascicles, class 1) next to a vessel
    (class 2)."""
    c.layers([0.9, 0.35], [0.03])
    c.echo *= 1 + 0.25 * np.sin(c.yy * c.rng.uniform(0.5, 0.9) + 0.1 * c.xx).astype(np.float32)
    side = 1 if c.rng.random() < 0.5 else -1
    nx, ny = c.at(c.rng.uniform(-0.3, 0.0) * side, c.rng.uniform(0.4, 0.6))
    r = c.px(c.rng.uniform(0.08, 0.11))
    nerve = c.within(c.blob(nx, ny, r, irregularity=0.1, aspect=c.rng.uniform(1.0, 1.5)))
    c.paint(nerve, 0.85)
    for _ in range(int(c.rng.integers(4, 8))):
        c.paint(c.ellipse(nx + c.rng.normal(0, 0.35 * r), ny + c.rng.normal(0, 0.3 * r), 0.2 * r, 0.2 * r)
                & nerve, 0.2)
    vx, vy = nx + side * c.px(c.rng.uniform(0.25, 0.35)), ny + c.px(c.rng.uniform(-0.08, 0.08))
    lumen = vessel(c, vx, vy, c.px(c.rng.uniform(0.06, 0.09)))
    label = np.zeros(c.echo.shape, dtype=np.uint8)
    label[nerve] = 1
    label[lumen] = 2
    return label


RECIPES = {
    "breast_lesion": Recipe(LINEAR, breast_lesion_seg),
    "breast_2cls": Recipe(LINEAR, breast_two_classes, grain=1.2, gain=0.95),
    "breast_3cls": Recipe(LINEAR, breast_three_classes, grain=0.9, gain=1.05),
    "thyroid_nodule": Recipe(LINEAR, thyroid_nodule, attenuation=0.8),
    "thyroid_nodule_det": Recipe(LINEAR, thyroid_nodule_det, attenuation=0.8, grain=1.2),
    "carotid_artery": Recipe(LINEAR, carotid_artery, attenuation=0.8, grain=0.9),
    "breast_lesion_det": Recipe(LINEAR, breast_lesion_det),
    "nerve_vessel_seg": Recipe(LINEAR, nerve_vessel, attenuation=0.9),
    "thyroid_tirads_cls": Recipe(LINEAR, thyroid_tirads, attenuation=0.8),
}
