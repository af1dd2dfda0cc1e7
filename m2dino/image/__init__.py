"""Image decoding, resize geometry and preprocessing shared by the model and the data pipeline."""

from .geometry import RESIZE_MODES, ResizeGeometry
from .io import ImageFormatError, ImageLike, read_image, to_rgb_uint8
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, backbone_normalization, normalize
from .resize import resize_image, resize_mask

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "backbone_normalization", "RESIZE_MODES", "ImageFormatError", "ImageLike",
           "Preprocessing", "ResizeGeometry", "normalize", "read_image", "resize_image", "resize_mask",
           "to_rgb_uint8"]
