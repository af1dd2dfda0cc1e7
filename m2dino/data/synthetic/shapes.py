"""The canvas a scene is drawn on (an echogenicity map over the field of view) and the shapes
organs are made of. Shapes are bool masks over pixel centres; sizes are in pixels."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from .fov import FieldOfView, Probe, field_of_view


@lru_cache(maxsize=16)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = (np.mgrid[0:height, 0:width] + 0.5).astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return xx, yy


class Canvas:
    """Echogenicity (0 = anechoic fluid, ~0.5 soft tissue, 1+ = bone / strong reflector) plus the
    structures that shadow or enhance what lies beneath them."""

    def __init__(self, height: int, width: int, probe: Probe, rng: np.random.Generator) -> None:
        self.h, self.w, self.rng = height, width, rng
        self.fov: FieldOfView = field_of_view(height, width, probe)
        self.xx, self.yy = _grid(height, width)
        self.echo = np.zeros((height, width), dtype=np.float32)
        # (structure, factor): what lies beyond the structure along its beams is multiplied by
        # factor (< 1 an acoustic shadow, > 1 posterior enhancement behind fluid).
        self.beam_effects: list[tuple[np.ndarray, float]] = []

    def shadow(self, mask: np.ndarray, strength: float = 0.85) -> None:
        """Bone, calcification, air or a scirrhous lesion: darken everything behind ``mask``."""
        self.beam_effects.append((mask, 1.0 - strength))

    def enhance(self, mask: np.ndarray, gain: float = 1.5) -> None:
        """Fluid attenuates little: brighten everything behind ``mask``."""
        self.beam_effects.append((mask, gain))

    def at(self, u: float, v: float) -> tuple[float, float]:
        """Pixel position of lateral ``u`` in [-1, 1] and depth ``v`` in [0, 1] of the field of view."""
        return self.fov.at(u, v)

    def px(self, fraction: float) -> float:
        """A length given as a fraction of the imaged depth, in pixels."""
        return fraction * self.fov.depth_px

    def smooth_noise(self, cells: int = 6, amplitude: float = 0.2) -> np.ndarray:
        """Low-frequency texture (tissue inhomogeneity) with mean 1: a coarse random grid upsampled."""
        coarse = self.rng.normal(0.0, 1.0, size=(cells, cells)).astype(np.float32)
        image = Image.fromarray(coarse).resize((self.w, self.h), Image.Resampling.BICUBIC)
        return 1.0 + amplitude * np.asarray(image)

    def paint(self, mask: np.ndarray, level: float, texture: float = 0.0) -> None:
        """Set the echogenicity inside ``mask`` to ``level``, optionally with its own texture."""
        if texture:
            self.echo[mask] = level * self.smooth_noise(5, texture)[mask]
        else:
            self.echo[mask] = level

    def layers(self, levels: list[float], bounds: list[float], wobble: float = 0.02) -> None:
        """Horizontal tissue layers (skin, fat, gland, muscle...) between depth ``bounds`` in [0, 1]."""
        depth = self.fov.axial + wobble * np.sin(self.xx / self.w * self.rng.uniform(3, 8) + self.rng.uniform(0, 6))
        self.echo[:] = levels[-1]
        for level, bound in zip(levels, bounds):
            self.echo[(depth < bound) & (self.echo == levels[-1])] = level
        self.echo *= self.smooth_noise(6, 0.15)

    def _window(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        """The pixel rows and columns covering [x0, x1] × [y0, y1] (shapes are computed only there:
        most are small, and the suite must generate thousands of images in seconds)."""
        rows = slice(min(max(int(y0) - 1, 0), self.h), min(max(int(y1) + 2, 0), self.h))
        cols = slice(min(max(int(x0) - 1, 0), self.w), min(max(int(x1) + 2, 0), self.w))
        return rows, cols

    def _local(self, window: tuple[slice, slice], cx: float, cy: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of the window's pixels in a frame centred on (cx, cy) and rotated by ``angle``."""
        dx, dy = self.xx[window] - cx, self.yy[window] - cy
        cos, sin = np.cos(angle), np.sin(angle)
        return dx * cos + dy * sin, -dx * sin + dy * cos

    def _mask(self, window: tuple[slice, slice], inside: np.ndarray) -> np.ndarray:
        out = np.zeros((self.h, self.w), dtype=bool)
        out[window] = inside
        return out

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> np.ndarray:
        r = max(a, b)
        window = self._window(cx - r, cy - r, cx + r, cy + r)
        u, v = self._local(window, cx, cy, angle)
        return self._mask(window, (u / a) ** 2 + (v / b) ** 2 <= 1.0)

    def polar(self, cx: float, cy: float, a: float, b: float, angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Normalised elliptic radius (1 on the ellipse) and polar angle of every pixel."""
        u, v = self._local((slice(None), slice(None)), cx, cy, angle)
        return np.hypot(u / a, v / b), np.arctan2(v / b, u / a)

    def ring(self, cx: float, cy: float, a: float, b: float, angle: float, thickness: float) -> np.ndarray:
        """The band between the ellipse and the one ``thickness`` pixels inside it."""
        return self.ellipse(cx, cy, a, b, angle) & ~self.ellipse(cx, cy, a - thickness, b - thickness, angle)

    def blob(self, cx: float, cy: float, r: float, irregularity: float = 0.15, harmonics: int = 4,
             aspect: float = 1.0, angle: float = 0.0, spikes: float = 0.0) -> np.ndarray:
        """A rounded organ or lesion: a radius modulated by random low harmonics (lobulation) and,
        with ``spikes``, high ones (spiculation). ``aspect`` stretches it along ``angle``."""
        phases = self.rng.uniform(0, 2 * np.pi, size=harmonics)
        spike_count, spike_phase = int(self.rng.integers(9, 15)), self.rng.uniform(0, 6)
        extent = r * max(aspect, 1.0) * (1 + irregularity * sum(1 / k for k in range(2, 2 + harmonics)) + spikes)
        window = self._window(cx - extent, cy - extent, cx + extent, cy + extent)
        u, v = self._local(window, cx, cy, angle)
        u, v = u / (r * aspect), v / r
        rho, phi = np.hypot(u, v), np.arctan2(v, u)
        boundary = np.ones_like(phi)
        for k, phase in zip(range(2, 2 + harmonics), phases):
            boundary += irregularity / k * np.cos(k * phi + phase)
        if spikes:
            boundary += spikes * np.maximum(0, np.cos(spike_count * phi + spike_phase)) ** 3
        return self._mask(window, rho <= boundary)

    def capsule(self, p0: tuple[float, float], p1: tuple[float, float], radius: float) -> np.ndarray:
        """Pixels within ``radius`` of the segment p0–p1 (bones, vessels, the cervical canal)."""
        (x0, y0), (x1, y1) = p0, p1
        window = self._window(min(x0, x1) - radius, min(y0, y1) - radius, max(x0, x1) + radius, max(y0, y1) + radius)
        xx, yy = self.xx[window], self.yy[window]
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        return self._mask(window, np.hypot(xx - x0 - t * dx, yy - y0 - t * dy) <= radius)

    def beams(self, lateral: float, width: float) -> np.ndarray:
        """The beams around lateral position ``lateral`` (vertical lines in a linear image, rays in a fan)."""
        return np.abs(self.fov.lateral - lateral) <= width

    def within(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` limited to the field of view (a label never covers unimaged pixels)."""
        return mask & self.fov.inside
