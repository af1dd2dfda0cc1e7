"""An ellipse: fitted to contour pixels (HC18 annotations), rasterised, measured (circumference)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ellipse:
    """Centre ``(cx, cy)``, semi-axes ``a >= b`` and the angle (radians) of the ``a`` axis from +x,
    in continuous pixel coordinates (y down)."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float

    def perimeter(self) -> float:
        """Ramanujan's second approximation (relative error < 1e-9 for head-like ellipses)."""
        h = ((self.a - self.b) / (self.a + self.b)) ** 2
        return float(np.pi * (self.a + self.b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h))))

    def major_axis_endpoints(self) -> np.ndarray:
        """The two ends of the major axis as a 2×2 array ``[[x, y], [x, y]]``, left end first
        (smaller x; the upper one if the axis is vertical) so the order does not depend on the fit."""
        dx, dy = self.a * np.cos(self.angle), self.a * np.sin(self.angle)
        ends = np.array([[self.cx - dx, self.cy - dy], [self.cx + dx, self.cy + dy]])
        return ends[np.lexsort((ends[:, 1], ends[:, 0]))]

    def contains(self, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        """Whether the points (e.g. pixel centres) lie inside the ellipse."""
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        u = (xx - self.cx) * cos + (yy - self.cy) * sin
        v = -(xx - self.cx) * sin + (yy - self.cy) * cos
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0

    def rasterize(self, height: int, width: int) -> np.ndarray:
        """Filled ellipse as a bool H×W mask (pixel centres inside), clipped to the image."""
        yy, xx = np.mgrid[0:height, 0:width] + 0.5
        return self.contains(xx, yy)


def fit_ellipse(xs: np.ndarray, ys: np.ndarray) -> Ellipse:
    """Least-squares ellipse through points (Halíř & Flusser's stable form of Fitzgibbon's direct fit).

    Works on an open arc too, which matters because some HC18 contours leave the image.
    """
    x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if x.size < 6:
        raise ValueError(f"an ellipse fit needs at least 6 points, got {x.size}")
    # Normalise for conditioning; the conic is fitted in normalised coordinates and mapped back.
    mx, my = x.mean(), y.mean()
    scale = max(x.std(), y.std(), 1e-12)
    x, y = (x - mx) / scale, (y - my) / scale
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    t = -np.linalg.solve(s3, s2.T)
    m = s1 + s2 @ t
    m = np.array([m[2] / 2, -m[1], m[0] / 2])
    _, vectors = np.linalg.eig(m)
    vectors = np.real(vectors)
    is_ellipse = 4 * vectors[0] * vectors[2] - vectors[1] ** 2 > 0
    if not np.any(is_ellipse):
        raise ValueError("the points do not lie on an ellipse")
    a1 = vectors[:, np.argmax(is_ellipse)]
    A, B, C, D, E, F = np.concatenate([a1, t @ a1])
    den = B * B - 4 * A * C
    x0, y0 = (2 * C * D - B * E) / den, (2 * A * E - B * D) / den
    num = 2 * (A * E * E + C * D * D - B * D * E + den * F)
    root = np.sqrt((A - C) ** 2 + B * B)
    semi_1 = -np.sqrt(num * (A + C + root)) / den
    semi_2 = -np.sqrt(num * (A + C - root)) / den
    angle = 0.5 * np.arctan2(-B, C - A)
    if semi_1 < semi_2:  # keep a as the major semi-axis
        semi_1, semi_2, angle = semi_2, semi_1, angle + np.pi / 2
    return Ellipse(float(x0 * scale + mx), float(y0 * scale + my), float(semi_1 * scale),
                   float(semi_2 * scale), float(angle))
