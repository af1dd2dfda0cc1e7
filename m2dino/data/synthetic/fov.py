"""Field of view of an ultrasound probe on the image grid: which pixels are imaged, and each
pixel's depth along its beam and lateral position (the beam it belongs to)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Probe:
    """``linear``: a rectangle, beams straight down. ``sector``: a fan from a virtual apex
    ``apex`` image heights above the top edge (0 = phased-array point apex, > 0 = curvilinear),
    opening ``2 * half_angle_deg``, imaged from ``near`` to the bottom edge (``far`` = 1)."""

    kind: str = "sector"
    half_angle_deg: float = 35.0
    apex: float = 0.25
    near: float = 0.04
    margin: float = 0.04  # linear probes: unimaged strip at each side


@dataclass(frozen=True)
class FieldOfView:
    inside: np.ndarray        # bool H×W
    axial: np.ndarray         # float H×W, depth along the beam, 0 at the probe face, 1 at the far edge
    lateral: np.ndarray       # float H×W in [-1, 1] across the field of view
    beam: np.ndarray          # int H×W, index of the beam (lateral bin) for shadow casting
    n_beams: int
    depth_px: float           # imaged depth in pixels (the unit for organ sizes)
    probe: Probe
    size: tuple[int, int]

    def at(self, u: float, v: float) -> tuple[float, float]:
        """Pixel (x, y) of the point at lateral position ``u`` in [-1, 1] and depth ``v`` in [0, 1]."""
        h, w = self.size
        p = self.probe
        if p.kind == "linear":
            half = w * (0.5 - p.margin)
            return w / 2 + u * half, v * h
        apex_y, r0, r1 = _sector_radii(h, p)
        theta = np.deg2rad(p.half_angle_deg) * u
        r = r0 + v * (r1 - r0)
        return w / 2 + r * np.sin(theta), apex_y + r * np.cos(theta)


def _sector_radii(h: int, p: Probe) -> tuple[float, float, float]:
    apex_y = -p.apex * h
    r1 = h - apex_y
    r0 = -apex_y + p.near * h if p.apex > 0 else p.near * h
    return apex_y, r0, r1


@lru_cache(maxsize=64)
def field_of_view(height: int, width: int, probe: Probe) -> FieldOfView:
    """Cached: every image of a task shares its field of view."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    if probe.kind == "linear":
        margin = probe.margin * width
        inside = (xx >= margin) & (xx <= width - margin)
        axial = yy / height
        lateral = (xx - width / 2) / (width / 2 - margin)
        beam = np.clip(xx.astype(int), 0, width - 1)
        n_beams, depth_px = width, float(height)
    elif probe.kind == "sector":
        apex_y, r0, r1 = _sector_radii(height, probe)
        dx, dy = xx - width / 2, yy - apex_y
        r, theta = np.hypot(dx, dy), np.arctan2(dx, dy)
        half = np.deg2rad(probe.half_angle_deg)
        inside = (r >= r0) & (r <= r1) & (np.abs(theta) <= half)
        axial = (r - r0) / (r1 - r0)
        lateral = theta / half
        n_beams = width
        beam = np.clip(((lateral + 1) / 2 * n_beams).astype(int), 0, n_beams - 1)
        depth_px = r1 - r0
    else:
        raise ValueError(f"unknown probe kind {probe.kind!r}; expected 'linear' or 'sector'")
    for array in (inside, axial, lateral, beam):
        array.setflags(write=False)
    return FieldOfView(inside, axial, lateral, beam, n_beams, float(depth_px), probe, (height, width))
