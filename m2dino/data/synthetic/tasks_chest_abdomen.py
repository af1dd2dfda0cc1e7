"""Synthetic recipes of the cardiothoracic and abdominal/other tasks."""

from __future__ import annotations

import numpy as np

from ..labels import box_of_mask
from .anatomy import BONE, FLUID, TISSUE, soft_tissue_background
from .recipe import CONVEX, LINEAR, PHASED, WIDE_CONVEX, Recipe
from .shapes import Canvas


def cardiac_multi(c: Canvas, _: int) -> np.ndarray:
    """Apical view: left ventricle cavity (1) inside its myocardium (2), left atrium (3) below,
    the right ventricle (unlabelled) beside them."""
    c.echo[:] = 0.1
    c.echo *= c.smooth_noise(5, 0.3)
    lx, ly = c.at(c.rng.uniform(-0.2, 0.0), c.rng.uniform(0.33, 0.4))
    axis = np.pi / 2 + c.rng.uniform(-0.25, 0.25)
    a, b, wall = c.px(c.rng.uniform(0.22, 0.27)), c.px(c.rng.uniform(0.1, 0.13)), c.px(0.045)
    rx, ry = lx + 2.0 * (b + wall) * np.sin(axis), ly - 2.0 * (b + wall) * np.cos(axis)
    c.paint(c.ellipse(rx, ry, 0.8 * a, 0.6 * b + wall, axis), 0.5)
    c.paint(c.ellipse(rx, ry, 0.8 * a - wall, 0.6 * b, axis), 0.08)
    myocardium = c.ellipse(lx, ly, a + wall, b + wall, axis)
    cavity = c.ellipse(lx, ly, a, b, axis)
    c.paint(myocardium, 0.75, texture=0.2)
    c.paint(cavity, 0.06)
    distance = a + wall + c.px(0.1)
    ax, ay = lx + distance * np.cos(axis), ly + distance * np.sin(axis)
    atrium = c.ellipse(ax, ay, c.px(0.1), c.px(0.12), axis)
    c.paint(c.ellipse(ax, ay, c.px(0.1) + wall / 2, c.px(0.12) + wall / 2, axis), 0.5)
    c.paint(atrium, 0.06)
    label = np.zeros(c.echo.shape, dtype=np.uint8)
    label[c.within(myocardium)] = 2
    label[c.within(cavity)] = 1
    label[c.within(atrium)] = 3
    return label


def _chest_wall(c: Canvas) -> float:
    """Subcutaneous tissue, two ribs with shadows and the bright pleural line between them; below
    it aerated lung. Returns the pleura's depth (0..1)."""
    pleura = c.rng.uniform(0.25, 0.35)
    c.layers([0.7, 0.35, 0.12], [0.05, pleura])
    c.paint(np.abs(c.fov.axial - pleura) < 0.012, 1.0)
    for u in (-0.75, 0.75):
        x, y = c.at(u + c.rng.uniform(-0.08, 0.08), pleura - 0.02)
        rib = c.ellipse(x, y, c.px(0.14), c.px(0.05))
        c.paint(rib, BONE)
        c.shadow(rib)
    return pleura


def _a_lines(c: Canvas, pleura: float) -> None:
    """Reverberations of a normal pleura: repeated horizontal lines at multiples of its depth."""
    for k in (2, 3):
        c.paint(np.abs(c.fov.axial - k * pleura) < 0.01, 0.55)


def _b_lines(c: Canvas, pleura: float) -> None:
    """Vertical comet tails from the pleura to the bottom (interstitial syndrome)."""
    for u in c.rng.uniform(-0.5, 0.5, size=int(c.rng.integers(2, 5))):
        c.paint(c.beams(u, 0.035) & (c.fov.axial > pleura), 0.8)


def _consolidation(c: Canvas, pleura: float) -> np.ndarray:
    """Tissue-like (hepatised) lung under the pleura with bright air bronchograms."""
    x, y = c.at(c.rng.uniform(-0.35, 0.35), pleura + c.rng.uniform(0.2, 0.28))
    region = c.within(c.blob(x, y, c.px(c.rng.uniform(0.15, 0.22)), irregularity=0.3, aspect=c.rng.uniform(1, 1.6)))
    region &= c.fov.axial > pleura + 0.015
    c.paint(region, TISSUE, texture=0.3)
    for _ in range(5):
        bx, by = x + c.rng.normal(0, c.px(0.06)), y + c.rng.normal(0, c.px(0.05))
        c.paint(c.ellipse(bx, by, c.px(0.02), c.px(0.01)) & region, 1.0)
    return region


def lung(c: Canvas, _: int) -> np.ndarray:
    return _consolidation(c, _chest_wall(c)).astype(np.uint8)


def lung_two_classes(c: Canvas, cls: int) -> int:
    """0 normal (A-lines), 1 abnormal (B-lines)."""
    pleura = _chest_wall(c)
    (_a_lines if cls == 0 else _b_lines)(c, pleura)
    return cls


def lung_three_classes(c: Canvas, cls: int) -> int:
    """0 A-lines, 1 B-lines, 2 consolidation with a pleural effusion."""
    pleura = _chest_wall(c)
    if cls == 0:
        _a_lines(c, pleura)
    elif cls == 1:
        _b_lines(c, pleura)
    else:
        region = _consolidation(c, pleura)
        effusion = c.within((c.fov.axial > pleura + 0.015) & (c.fov.axial < pleura + 0.12)) & ~region
        c.paint(effusion, FLUID)
    return cls


def liver_lesion(c: Canvas, cls: int) -> int:
    """0 benign (bright, smooth, homogeneous: haemangioma-like), 1 malignant (dark core in a thick
    bright halo, irregular: the "target" sign of metastases)."""
    soft_tissue_background(c, level=0.45, vessels=2)
    x, y = c.at(c.rng.uniform(-0.3, 0.3), c.rng.uniform(0.35, 0.6))
    r = c.px(c.rng.uniform(0.1, 0.15))
    if cls == 0:
        c.paint(c.blob(x, y, r, irregularity=0.05), 1.3)
    else:
        c.paint(c.blob(x, y, 1.4 * r, irregularity=0.3, harmonics=5), 1.0)
        c.paint(c.blob(x, y, r, irregularity=0.3, harmonics=5), 0.08)
    return cls


def organ(c: Canvas, cls: int) -> int:
    """Six organs with distinct shapes and echo patterns: liver, kidney, bladder, spleen,
    gallbladder, uterus."""
    x, y = c.at(c.rng.uniform(-0.2, 0.2), c.rng.uniform(0.45, 0.55))
    r, angle = c.px(c.rng.uniform(0.22, 0.28)), c.rng.uniform(-0.4, 0.4)
    if cls == 0:  # liver: homogeneous parenchyma, vessels, the diaphragm's bright curve
        soft_tissue_background(c, level=0.55, vessels=4)
        c.paint(c.ring(x, y + 2.2 * r, 2.6 * r, 2.6 * r, 0.0, c.px(0.025)), 1.2)
    elif cls == 1:  # kidney: dark cortex, bright central sinus
        soft_tissue_background(c, level=0.35)
        c.paint(c.blob(x, y, r, irregularity=0.05, aspect=1.9, angle=angle), 0.25)
        c.paint(c.blob(x, y, 0.45 * r, irregularity=0.2, aspect=2.2, angle=angle), 1.0)
    elif cls == 2:  # bladder: large anechoic rounded square, posterior enhancement
        soft_tissue_background(c, level=0.4)
        rho_x, rho_y = np.abs(c.xx - x) / (1.3 * r), np.abs(c.yy - y) / r
        bladder = rho_x**4 + rho_y**4 <= 1
        c.paint(bladder, FLUID)
        c.enhance(bladder)
    elif cls == 3:  # spleen: a bright crescent
        soft_tissue_background(c, level=0.3)
        crescent = c.ellipse(x, y, 1.5 * r, r, angle) & ~c.ellipse(x, y + 0.6 * r, 1.5 * r, r, angle)
        c.paint(crescent, 0.75, texture=0.1)
    elif cls == 4:  # gallbladder: dark pear in the liver, a stone with its shadow
        soft_tissue_background(c, level=0.5, vessels=2)
        gallbladder = c.blob(x, y, 0.6 * r, irregularity=0.1, aspect=2.0, angle=angle)
        c.paint(gallbladder, FLUID)
        stone = c.ellipse(x, y + 0.35 * r, 0.18 * r, 0.15 * r)
        c.paint(stone, 1.5)
        c.shadow(stone)
    else:  # uterus: pear-shaped, bright endometrial stripe along its axis
        soft_tissue_background(c, level=0.28)
        c.paint(c.blob(x, y, 0.8 * r, irregularity=0.1, aspect=1.7, angle=angle), 0.5, texture=0.2)
        d = np.array([np.cos(angle), np.sin(angle)]) * r
        c.paint(c.capsule((x - d[0], y - d[1]), (x + d[0], y + d[1]), c.px(0.015)), 1.1)
    return cls


def ovary_tumor(c: Canvas, _: int) -> np.ndarray:
    """A large cystic mass with septa and solid papillae, posterior enhancement."""
    soft_tissue_background(c, level=0.4)
    x, y = c.at(c.rng.uniform(-0.25, 0.25), c.rng.uniform(0.4, 0.55))
    r = c.px(c.rng.uniform(0.17, 0.24))
    tumour = c.within(c.blob(x, y, r, irregularity=0.15, aspect=c.rng.uniform(1.0, 1.4)))
    c.paint(tumour, FLUID)
    c.enhance(tumour)
    for _ in range(int(c.rng.integers(1, 4))):
        angle = c.rng.uniform(0, np.pi)
        d = np.array([np.cos(angle), np.sin(angle)]) * r
        c.paint(c.capsule((x - d[0], y - d[1]), (x + d[0], y + d[1]), 0.8) & tumour, 0.9)
    for _ in range(int(c.rng.integers(1, 3))):
        angle = c.rng.uniform(0, 2 * np.pi)
        c.paint(c.ellipse(x + 0.8 * r * np.cos(angle), y + 0.8 * r * np.sin(angle), 0.2 * r, 0.2 * r) & tumour,
                0.55)
    return tumour.astype(np.uint8)


def ovary_tumor_type(c: Canvas, cls: int) -> int:
    """MMOTU's 8 categories: the mass drawn as for ``ovary_tumor``, its content by category
    (ground glass, anechoic, bright and mixed, solid, ...)."""
    tumour = ovary_tumor(c, cls).astype(bool)
    level, texture = ((0.3, 0.1), (0.08, 0.0), (0.9, 0.6), (0.5, 0.2), (0.03, 0.0), (0.35, 0.4), (0.15, 0.3),
                      (0.6, 0.5))[cls]
    c.paint(tumour, level, texture=texture)
    return cls


def uterine_fibroid(c: Canvas, _: int) -> np.ndarray:
    """A round, whorled, shadowing fibroid inside the uterus."""
    soft_tissue_background(c, level=0.28)
    x, y = c.at(c.rng.uniform(-0.15, 0.15), c.rng.uniform(0.45, 0.55))
    r = c.px(c.rng.uniform(0.27, 0.32))
    c.paint(c.blob(x, y, r, irregularity=0.08, aspect=1.4), 0.5, texture=0.2)
    fx, fy = x + c.rng.uniform(-0.4, 0.4) * r, y + c.rng.uniform(-0.3, 0.3) * r
    fr = c.px(c.rng.uniform(0.08, 0.13))
    fibroid = c.within(c.blob(fx, fy, fr, irregularity=0.06))
    rho, _ = c.polar(fx, fy, fr, fr)
    whorl = 0.28 + 0.12 * np.sin(rho * 9.0 + c.rng.uniform(0, 6))
    c.echo[fibroid] = whorl[fibroid]
    c.shadow(fibroid & (np.abs(c.xx - fx) > 0.75 * fr))  # edge shadows
    return box_of_mask(fibroid)


def spinal_cord_injury(c: Canvas, _: int) -> np.ndarray:
    """Sagittal cord: a dark band between bright dura lines with a bright central canal, a vertebral
    body below; the injury is a bright irregular region inside the cord."""
    top = c.rng.uniform(0.25, 0.33)
    bottom = top + c.rng.uniform(0.22, 0.28)
    c.layers([0.8, 0.35, 1.0, 0.12, 1.0, 0.3], [0.03, top, top + 0.025, bottom, bottom + 0.025])
    c.paint(np.abs(c.fov.axial - (top + bottom) / 2) < 0.006, 0.8)
    vertebra = (c.fov.axial > bottom + 0.06) & (c.fov.axial < bottom + 0.09)
    c.paint(vertebra, BONE)
    c.shadow(vertebra)
    x, y = c.at(c.rng.uniform(-0.5, 0.5), (top + bottom) / 2)
    cord = (c.fov.axial > top + 0.025) & (c.fov.axial < bottom)
    injury = c.within(c.blob(x, y, c.px(c.rng.uniform(0.06, 0.09)), irregularity=0.3, aspect=c.rng.uniform(1.2, 2.5))
                      & cord)
    c.paint(injury, 0.75, texture=0.3)
    return box_of_mask(injury)


RECIPES = {
    "cardiac_multi": Recipe(PHASED, cardiac_multi, grain=1.3, attenuation=0.9),
    "lung": Recipe(LINEAR, lung, grain=1.1),
    "lung_2cls": Recipe(LINEAR, lung_two_classes, grain=1.0, gain=1.05),
    "lung_disease_3cls": Recipe(WIDE_CONVEX, lung_three_classes, grain=1.2),
    "liver_lesion_2cls": Recipe(CONVEX, liver_lesion, grain=1.1, attenuation=1.4),
    "organ_cls": Recipe(CONVEX, organ, grain=1.0),
    "ovary_tumor": Recipe(WIDE_CONVEX, ovary_tumor, grain=1.0),
    "ovary_tumor_cls": Recipe(WIDE_CONVEX, ovary_tumor_type, grain=1.0),
    "uterine_fibroid_det": Recipe(WIDE_CONVEX, uterine_fibroid, grain=1.2, gain=0.95),
    "spinal_cord_injury_loc": Recipe(LINEAR, spinal_cord_injury, grain=0.9),
}
