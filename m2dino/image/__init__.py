"""Image decoding and resize geometry shared by the model's predictor and the data pipeline."""

from .geometry import RESIZE_MODES, ResizeGeometry
from .io import ImageFormatError, ImageLike, read_image, to_rgb_uint8
from .resize import resize_image, resize_mask

__all__ = ["RESIZE_MODES", "ImageFormatError", "ImageLike", "ResizeGeometry", "read_image", "resize_image", "resize_mask",
           "to_rgb_uint8"]
