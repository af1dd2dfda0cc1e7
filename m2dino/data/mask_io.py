"""Reading and writing label masks (gray PNGs whose pixel value is the class index) and image headers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..image.io import ImageFormatError, open_image
from .errors import DataError, MissingFileError


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"file not found: {path}")
    try:
        with open_image(path, path) as image:  # refused here when the header declares too many pixels
            width, height = image.size
    except ImageFormatError as err:
        raise DataError(str(err)) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    return height, width


def read_mask(path: str | Path) -> np.ndarray:
    """A mask file as uint8 H×W class indices.

    Gray and 1-bit images give their values. Palette images give their palette indices (the
    usual way colour-coded index masks are stored, e.g. VOC-style PNGs), except when every used
    palette entry is gray: then the gray level is the value, because GIF writers re-number the
    palette of a saved gray mask. A colour (RGB) mask is accepted only if its channels are
    equal, because mapping colours to classes is dataset-specific and must be done explicitly.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"mask file not found: {path}")
    try:
        with open_image(path, path) as image:  # the pixel bound is checked before decoding
            image.load()
            mode = image.mode
            array = np.asarray(image)
            palette = image.getpalette() if mode == "P" else None
    except ImageFormatError as err:
        raise DataError(str(err)) from None  # names the file: too many pixels, a bomb, not an image
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable mask image ({err})") from None
    if palette is not None:
        colours = np.zeros((256, 3), dtype=np.uint8)
        entries = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
        colours[:len(entries)] = entries
        used = colours[np.unique(array)]
        if np.all(used == used[:, :1]):
            array = colours[array, 0]
    elif mode in ("RGB", "RGBA", "LA"):
        channels = array[..., :3] if mode != "LA" else array[..., :1]
        if not np.all(channels == channels[..., :1]):
            raise DataError(f"{path}: colour ({mode}) mask; expected a gray or palette mask whose pixel "
                            "values are class indices")
        array = channels[..., 0]
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{path}: mask values up to {array.max()}; expected class indices 0..255")
    return np.ascontiguousarray(array, dtype=np.uint8)


def write_mask(mask: np.ndarray, path: str | Path) -> None:
    """Save class indices as an 8-bit gray PNG (the FMC layout's mask format)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8)).save(path)


def write_image(image: np.ndarray, path: str | Path) -> None:
    """Save a uint8 H×W×3 image as PNG; gray content (equal channels) is stored as 1 channel.

    Speckle hardly compresses: the fastest zlib level gives files about 20% larger than the
    default level but encodes twice as fast, and encoding is what converting a dataset waits on.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    gray = image[..., 0]
    if np.array_equal(image, np.repeat(gray[..., None], 3, axis=2)):
        Image.fromarray(np.ascontiguousarray(gray)).save(path, compress_level=1)
    else:
        Image.fromarray(np.ascontiguousarray(image)).save(path, compress_level=1)
