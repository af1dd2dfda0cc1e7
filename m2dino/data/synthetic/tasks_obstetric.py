"""Synthetic recipes of the fetal, intrapartum and cervix tasks (and HC18's extra tasks)."""

from __future__ import annotations

import numpy as np

from ..ellipse import Ellipse
from ..labels import box_of_mask
from .anatomy import (
    BONE,
    FLUID,
    TISSUE,
    fetal_head,
    marker_at,
    obstetric_background,
    random_head,
    soft_tissue_background,
)
from .recipe import CONVEX, TRANSVAGINAL, WIDE_CONVEX, Recipe
from .shapes import Canvas

# The synthetic image spans this many millimetres vertically, whatever its pixel size, so the
# head circumference in mm is readable from the image (HC18 gives the pixel size per image instead).
IMAGE_HEIGHT_MM = 150.0


def _head(c: Canvas) -> tuple[Ellipse, np.ndarray]:
    obstetric_background(c)
    ellipse = random_head(c, size=0.24)
    return ellipse, fetal_head(c, ellipse)


def _abdomen(c: Canvas) -> dict[str, np.ndarray]:
    """Fetal abdomen in cross-section: body, stomach bubble, spine, umbilical vein."""
    cx, cy = c.at(c.rng.uniform(-0.25, 0.25), c.rng.uniform(0.45, 0.55))
    r = c.px(0.24 * c.rng.uniform(0.85, 1.1))
    body = c.blob(cx, cy, r, irregularity=0.05, aspect=c.rng.uniform(1.0, 1.15), angle=c.rng.uniform(-0.5, 0.5))
    c.paint(body, TISSUE, texture=0.2)
    phi = c.rng.uniform(0, 2 * np.pi)
    stomach = c.blob(cx + 0.38 * r * np.cos(phi), cy + 0.38 * r * np.sin(phi), 0.36 * r, irregularity=0.1,
                     aspect=1.3, angle=phi)
    c.paint(stomach, FLUID)
    spine = np.zeros_like(body)
    for offset in (-0.35, 0.0, 0.35):
        spine |= marker_at(c, cx, cy, 0.66 * r, phi + np.pi + offset, 0.13 * r)
    c.paint(spine, BONE)
    c.shadow(spine)
    start = (cx + 0.1 * r * np.cos(phi + np.pi / 2), cy + 0.1 * r * np.sin(phi + np.pi / 2))
    end = (cx + 0.75 * r * np.cos(phi + np.pi / 2), cy + 0.75 * r * np.sin(phi + np.pi / 2))
    vein = c.capsule(start, end, 0.11 * r)  # thick enough to stay visible at 64 px
    c.paint(vein, FLUID)
    return {name: c.within(m) for name, m in
            {"body": body, "stomach": stomach, "spine": spine, "vein": vein}.items()}


def _thorax(c: Canvas) -> np.ndarray:
    """Fetal chest: ribs around it (with shadows) and a four-chamber heart; returns the heart."""
    cx, cy = c.at(c.rng.uniform(-0.25, 0.25), c.rng.uniform(0.45, 0.55))
    r = c.px(0.25 * c.rng.uniform(0.85, 1.1))
    c.paint(c.ellipse(cx, cy, r, r), 0.4, texture=0.2)
    ribs = np.zeros(c.echo.shape, dtype=bool)
    for angle in np.linspace(0, 2 * np.pi, 7, endpoint=False) + c.rng.uniform(0, 1):
        ribs |= marker_at(c, cx, cy, 0.95 * r, angle, 0.06 * r)
    c.paint(ribs, BONE)
    c.shadow(ribs)
    phi = c.rng.uniform(0, 2 * np.pi)
    hx, hy = cx + 0.2 * r * np.cos(phi), cy + 0.2 * r * np.sin(phi)
    angle = c.rng.uniform(0, np.pi)
    heart = c.ellipse(hx, hy, 0.5 * r, 0.42 * r, angle)
    c.paint(heart, 0.65)
    for k in range(4):  # four chambers in the quadrants, the septum between them stays bright
        chamber_angle = angle + np.pi / 4 + k * np.pi / 2
        c.paint(marker_at(c, hx, hy, 0.22 * r, chamber_angle, 0.16 * r), FLUID)
    return c.within(heart)


def fetal_head_seg(c: Canvas, _: int) -> np.ndarray:
    return _head(c)[1].astype(np.uint8)


def fetal_head_det(c: Canvas, _: int) -> np.ndarray:
    return box_of_mask(_head(c)[1])


def fetal_head_axis(c: Canvas, _: int) -> np.ndarray:
    return _head(c)[0].major_axis_endpoints()


def fetal_head_circumference(c: Canvas, _: int) -> float:
    return _head(c)[0].perimeter() * IMAGE_HEIGHT_MM / c.h


def fetal_abdomen_multi(c: Canvas, _: int) -> np.ndarray:
    obstetric_background(c)
    parts = _abdomen(c)
    label = np.zeros(c.echo.shape, dtype=np.uint8)
    for value, name in enumerate(("body", "stomach", "spine", "vein"), start=1):
        label[parts[name]] = value
    return label


def fetal_heart(c: Canvas, _: int) -> np.ndarray:
    obstetric_background(c)
    return _thorax(c).astype(np.uint8)


def fetal_plane(c: Canvas, cls: int) -> int:
    """abdomen, brain, femur, thorax, maternal cervix, other: each plane's typical content."""
    if cls == 4:
        _cervix(c)
        return cls
    obstetric_background(c)
    if cls == 0:
        _abdomen(c)
    elif cls == 1:
        e = random_head(c, size=0.24)
        fetal_head(c, e)
        for side in (-1, 1):  # lateral ventricles
            c.paint(marker_at(c, e.cx, e.cy, 0.35 * e.b, e.angle + side * np.pi / 2, 0.12 * e.b), FLUID)
    elif cls == 2:
        _femur(c)
    elif cls == 3:
        _thorax(c)
    else:  # limbs, cord, placenta: a few unremarkable blobs
        for _ in range(int(c.rng.integers(2, 5))):
            x, y = c.at(c.rng.uniform(-0.5, 0.5), c.rng.uniform(0.25, 0.8))
            c.paint(c.blob(x, y, c.px(c.rng.uniform(0.05, 0.12)), aspect=c.rng.uniform(1, 2.5),
                           angle=c.rng.uniform(0, np.pi)), c.rng.uniform(0.3, 0.8), texture=0.2)
    return cls


def _femur(c: Canvas) -> np.ndarray:
    """A femur: bright shaft with its proximal end thicker (so the two ends are distinguishable
    and keep their meaning under a mirror). Returns [proximal end, distal end]."""
    cx, cy = c.at(c.rng.uniform(-0.2, 0.2), c.rng.uniform(0.45, 0.6))
    length = c.px(c.rng.uniform(0.35, 0.5))
    angle = c.rng.uniform(-0.5, 0.5) + (np.pi if c.rng.random() < 0.5 else 0.0)
    d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    ends = np.array([[cx, cy] - d, [cx, cy] + d])
    c.paint(c.capsule(tuple(ends[0]), tuple(ends[1]), c.px(0.09)), 0.4, texture=0.2)  # thigh
    bone = c.capsule(tuple(ends[0]), tuple(ends[1]), c.px(0.016))
    bone |= c.ellipse(*ends[0], c.px(0.035), c.px(0.035))
    c.paint(bone, BONE)
    c.shadow(bone)
    return ends


def fetal_femur(c: Canvas, _: int) -> np.ndarray:
    obstetric_background(c)
    return _femur(c)


def _intrapartum(c: Canvas) -> tuple[np.ndarray, np.ndarray, np.ndarray, Ellipse]:
    """Transperineal view: the pubic symphysis upper left, the fetal head below right (kept apart,
    so that the tangent from the symphysis to the skull exists)."""
    soft_tissue_background(c, level=0.3)
    while True:  # rejection sampling; a few draws at most
        hx, hy = c.at(c.rng.uniform(0.05, 0.3), c.rng.uniform(0.62, 0.74))
        b = c.px(0.22 * c.rng.uniform(0.9, 1.1))
        e = Ellipse(hx, hy, 1.15 * b, b, c.rng.uniform(-0.4, 0.4))
        sx, sy = c.at(c.rng.uniform(-0.6, -0.35), c.rng.uniform(0.18, 0.28))
        length, angle = c.px(c.rng.uniform(0.12, 0.16)), c.rng.uniform(0.9, 1.3)
        d = np.array([np.cos(angle), np.sin(angle)]) * length
        ends = np.array(sorted([[sx - d[0], sy - d[1]], [sx + d[0], sy + d[1]]], key=lambda p: p[1]))
        margin = Ellipse(e.cx, e.cy, e.a + c.px(0.05), e.b + c.px(0.05), e.angle)
        if not margin.contains(ends[:, 0], ends[:, 1]).any():
            break
    head = fetal_head(c, e)
    symphysis = c.ellipse(sx, sy, length, c.px(0.035), angle)
    c.paint(symphysis, 0.95)
    c.shadow(symphysis)
    return c.within(symphysis), head, ends, e


def head_symphysis_multi(c: Canvas, _: int) -> np.ndarray:
    symphysis, head, _, _ = _intrapartum(c)
    label = np.zeros(c.echo.shape, dtype=np.uint8)
    label[head] = 2
    label[symphysis] = 1
    return label


def iugc(c: Canvas, _: int) -> np.ndarray:
    """Symphysis upper and lower ends, and where the tangent from the lower end touches the skull
    (the three points of the angle of progression)."""
    _, _, ends, e = _intrapartum(c)
    t = np.linspace(0, 2 * np.pi, 1440, endpoint=False)
    rot = np.array([[np.cos(e.angle), -np.sin(e.angle)], [np.sin(e.angle), np.cos(e.angle)]])
    points = (rot @ np.stack([e.a * np.cos(t), e.b * np.sin(t)])).T + [e.cx, e.cy]
    tangents = (rot @ np.stack([-e.a * np.sin(t), e.b * np.cos(t)])).T
    rel = points - ends[1]
    cross = rel[:, 0] * tangents[:, 1] - rel[:, 1] * tangents[:, 0]
    touching = np.nonzero(np.sign(cross) != np.sign(np.roll(cross, -1)))[0]
    tangent_point = points[touching[np.argmax(points[touching, 1])]]
    return np.vstack([ends, tangent_point])


def _position_head(c: Canvas, cls: int) -> None:
    """Head with the fetal spine leaving the occiput towards one of 8 directions and the orbits
    opposite: the direction is the class, so a mirror changes it (the task forbids hflip)."""
    soft_tissue_background(c, level=0.3)
    cx, cy = c.at(c.rng.uniform(-0.15, 0.15), c.rng.uniform(0.45, 0.55))
    b = c.px(0.2 * c.rng.uniform(0.9, 1.1))
    e = Ellipse(cx, cy, b * c.rng.uniform(1.0, 1.08), b, c.rng.uniform(-0.3, 0.3))
    fetal_head(c, e)
    direction = cls * np.pi / 4 + c.rng.uniform(-0.12, 0.12)
    unit = np.array([np.cos(direction), np.sin(direction)])
    spine = c.capsule(tuple([cx, cy] + 0.95 * b * unit), tuple([cx, cy] + 1.7 * b * unit), 0.2 * b)
    c.paint(spine, BONE)
    c.shadow(spine)
    for side in (-0.45, 0.45):
        c.paint(marker_at(c, cx, cy, 0.5 * b, direction + np.pi + side, 0.2 * b), FLUID)


def fetal_head_position(c: Canvas, cls: int) -> int:
    _position_head(c, cls)
    return cls


def fetal_sacral_position(c: Canvas, cls: int) -> int:
    """The sacrum as an arc of vertebrae inside the pelvis, bulging towards one of 8 directions."""
    soft_tissue_background(c, level=0.15)
    cx, cy = c.at(c.rng.uniform(-0.12, 0.12), c.rng.uniform(0.45, 0.55))
    radius = c.px(0.2 * c.rng.uniform(0.9, 1.1))
    c.paint(c.ellipse(cx, cy, 1.35 * radius, 1.35 * radius), 0.45, texture=0.2)
    direction = cls * np.pi / 4 + c.rng.uniform(-0.12, 0.12)
    bones = np.zeros(c.echo.shape, dtype=bool)
    for offset in np.linspace(-1.0, 1.0, 7):
        bones |= marker_at(c, cx, cy, radius, direction + offset, c.px(0.04))
    c.paint(bones, BONE)
    c.shadow(bones)
    return cls


def _cervix(c: Canvas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cervix along an oblique axis with its canal; the internal os (a small dark funnel) may be at
    either end. Returns the cervix, its upper (anterior) lip and [internal os, external os]."""
    soft_tissue_background(c, level=0.3)
    cx, cy = c.at(c.rng.uniform(-0.15, 0.15), c.rng.uniform(0.42, 0.55))
    a, b = c.px(c.rng.uniform(0.3, 0.38)), c.px(c.rng.uniform(0.1, 0.13))
    angle = c.rng.uniform(-0.45, 0.45)
    body = c.within(c.blob(cx, cy, b, irregularity=0.05, aspect=a / b, angle=angle))
    c.paint(body, 0.65, texture=0.2)
    d = np.array([np.cos(angle), np.sin(angle)]) * 0.85 * a
    ends = np.array([[cx, cy] - d, [cx, cy] + d])
    if c.rng.random() < 0.5:
        ends = ends[::-1]
    c.paint(c.capsule(tuple(ends[0]), tuple(ends[1]), c.px(0.008)), 1.0)
    c.paint(c.ellipse(*ends[0], c.px(0.035), c.px(0.03), angle), FLUID)
    # Above the canal line (its normal points up in image coordinates) is the anterior lip.
    side = (c.xx - cx) * -np.sin(angle) + (c.yy - cy) * np.cos(angle)
    return body, body & (side < 0), ends


def cervix(c: Canvas, _: int) -> np.ndarray:
    return _cervix(c)[0].astype(np.uint8)


def cervix_multi(c: Canvas, _: int) -> np.ndarray:
    body, anterior, _ = _cervix(c)
    return np.where(anterior, 1, np.where(body, 2, 0)).astype(np.uint8)


def fugc(c: Canvas, _: int) -> np.ndarray:
    return _cervix(c)[2]


RECIPES = {
    "fetal_head": Recipe(CONVEX, fetal_head_seg),
    "fetal_abdomen_multi": Recipe(CONVEX, fetal_abdomen_multi, grain=1.2),
    "fetal_heart": Recipe(CONVEX, fetal_heart, grain=0.9, gain=1.1),
    "fetal_plane_cls": Recipe(CONVEX, fetal_plane, grain=1.1),
    "fetal_femur": Recipe(CONVEX, fetal_femur, attenuation=1.0),
    "head_symphysis_multi": Recipe(WIDE_CONVEX, head_symphysis_multi, grain=1.3),
    "IUGC": Recipe(WIDE_CONVEX, iugc, grain=1.3, gain=0.9),
    "fetal_head_pos_cls": Recipe(WIDE_CONVEX, fetal_head_position, grain=1.1),
    "fetal_sacral_pos_cls": Recipe(WIDE_CONVEX, fetal_sacral_position, grain=1.1, gain=1.1),
    "cervix": Recipe(TRANSVAGINAL, cervix, grain=1.0),
    "cervix_multi": Recipe(TRANSVAGINAL, cervix_multi, grain=1.2, gain=0.9),
    "FUGC": Recipe(TRANSVAGINAL, fugc, grain=1.0, gain=1.1),
    "fetal_head_det": Recipe(CONVEX, fetal_head_det),
    "fetal_head_axis": Recipe(CONVEX, fetal_head_axis),
    "fetal_head_circumference": Recipe(CONVEX, fetal_head_circumference),
}
