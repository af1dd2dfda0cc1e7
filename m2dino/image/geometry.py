"""Resize geometry between an original image and the model's input grid, with its exact inverse."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESIZE_MODES = ("letterbox", "stretch")


@dataclass(frozen=True)
class ResizeGeometry:
    """Maps original pixel coordinates to model-input coordinates: ``x' = x * scale_x + pad_x``.

    ``letterbox`` keeps the aspect ratio (one scale, the image centred, padded with zeros);
    ``stretch`` scales each axis to the target size. Coordinates are continuous pixel coordinates
    (0 is the left edge of the first pixel), so the inverse is exact for boxes and keypoints.
    """

    original_size: tuple[int, int]  # (height, width)
    target_size: tuple[int, int]    # (height, width)
    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    @classmethod
    def create(cls, original_size: tuple[int, int], target_size: tuple[int, int],
               mode: str = "letterbox") -> "ResizeGeometry":
        if mode not in RESIZE_MODES:
            raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")
        (h, w), (th, tw) = original_size, target_size
        if min(h, w, th, tw) <= 0:
            raise ValueError(f"sizes must be positive, got original {original_size} and target {target_size}")
        if mode == "stretch":
            return cls((h, w), (th, tw), tw / w, th / h, 0.0, 0.0)
        scale = min(tw / w, th / h)
        new_w, new_h = cls.content_size(w, h, scale)
        return cls((h, w), (th, tw), new_w / w, new_h / h, (tw - new_w) // 2, (th - new_h) // 2)

    @staticmethod
    def content_size(width: int, height: int, scale: float) -> tuple[int, int]:
        return max(1, round(width * scale)), max(1, round(height * scale))

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """The (x0, y0, x1, y1) region of the target grid that holds image content."""
        w, h = self.original_size[1], self.original_size[0]
        x0, y0 = int(self.pad_x), int(self.pad_y)
        return x0, y0, x0 + round(w * self.scale_x), y0 + round(h * self.scale_y)

    def points_to_target(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        return np.stack([points[..., 0] * self.scale_x + self.pad_x,
                         points[..., 1] * self.scale_y + self.pad_y], axis=-1)

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        return np.stack([(points[..., 0] - self.pad_x) / self.scale_x,
                         (points[..., 1] - self.pad_y) / self.scale_y], axis=-1)

    def boxes_to_target(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float64)
        return self.points_to_target(boxes.reshape(*boxes.shape[:-1], 2, 2)).reshape(boxes.shape)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=np.float64)
        return self.points_to_original(boxes.reshape(*boxes.shape[:-1], 2, 2)).reshape(boxes.shape)
