"""Turning whatever a user passes (path, PIL image, numpy array) into one validated uint8 RGB array."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..limits import LimitError, check_image_pixels

ImageLike = Union[str, Path, Image.Image, np.ndarray]


class ImageFormatError(ValueError):
    """An image that cannot be used as-is; the message names the source and what was expected."""


class ImageTooLargeError(ImageFormatError, LimitError):
    """An image beyond `m2dino.limits`' pixel bound (refused before it is decoded)."""


def check_pixels(width: int, height: int, source: str) -> None:
    try:
        check_image_pixels(width, height, source)
    except LimitError as err:
        raise ImageTooLargeError(str(err)) from None


def open_image(file, source: str | Path) -> Image.Image:
    """``Image.open`` whose declared size is checked against `m2dino.limits` before anything is decoded
    (a 140 KB PNG may declare 12,000 × 12,000 pixels); ``file`` is a path or a binary file object."""
    try:
        with warnings.catch_warnings():  # PIL's warning above 89 M pixels: m2dino's own bound, below, decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(file)
    except Image.DecompressionBombError as err:
        raise ImageFormatError(f"{source}: refused as a decompression bomb ({err})") from None
    except (UnidentifiedImageError, SyntaxError) as err:
        raise ImageFormatError(f"{source}: not a readable image ({err})") from err
    try:
        check_pixels(*image.size, str(source))
    except ImageTooLargeError:
        image.close()
        raise
    return image


def read_image(path: str | Path, exif_orientation: bool = False) -> Image.Image:
    """Open an image file fully (so a truncated file fails here, naming the file).

    ``exif_orientation`` turns the pixels as the file's EXIF Orientation tag says (as image viewers show
    them). It is off by default because the data readers load masks, boxes and points in the file's stored
    pixel grid: turning an image but not its labels would misalign them.
    """
    return _without_palette(_load(path, exif_orientation))


def _load(path: str | Path, exif_orientation: bool = False) -> Image.Image:
    """The file's decoded image in its own mode (palette images stay palette images)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; expected an image file (PNG, JPEG, ...)")
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with open_image(path, path) as image:
            _reject_high_bit_depth(image, path)
            image.load()
            return ImageOps.exif_transpose(image) if exif_orientation else image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageFormatError(f"{path}: not a readable image ({err})") from err


def _without_palette(image: Image.Image) -> Image.Image:
    """A palette image as the colours it shows: RGBA when one palette entry is transparent, else RGB."""
    if image.mode != "P":
        return image
    return image.convert("RGBA" if "transparency" in image.info else "RGB")


def _reject_high_bit_depth(image: Image.Image, path: Path) -> None:
    """Pillow decodes a 16-bit RGB(A) or gray+alpha PNG into 8-bit modes by dropping the low byte (a
    12-bit scan comes out with values up to 15), so the file's own sample format is checked before decoding."""
    for tile in image.tile:
        rawmode = tile.args if isinstance(tile.args, str) else (tile.args or ("",))[0]
        if isinstance(rawmode, str) and ";16" in rawmode and not rawmode.startswith("I;"):  # I;16 stays 16-bit
            raise ImageFormatError(f"{path}: 16-bit image ({rawmode.split(';')[0]}, 16 bits per sample); expected an "
                                   "8-bit gray or RGB image: rescale it to 0..255 and save it as 8-bit first")


def to_rgb_uint8(image: ImageLike, allow_rgba: bool = False, name: str | None = None,
                 exif_orientation: bool = False) -> np.ndarray:
    """Return ``image`` as a contiguous uint8 H×W×3 array.

    Gray images are replicated to three channels (ultrasound is mostly gray; the backbone wants RGB).
    16-bit images and images with an alpha channel are rejected unless ``allow_rgba`` is set,
    because scaling 16-bit data or dropping alpha silently changes what the model sees.
    ``exif_orientation`` applies to a file path only (see `read_image`).
    """
    source = name or (str(image) if isinstance(image, (str, Path)) else type(image).__name__)
    alpha_kind = "RGBA image (4 channels)"
    if isinstance(image, (str, Path)):
        image = _load(image, exif_orientation)
        if image.mode == "P" and "transparency" in image.info:
            alpha_kind = "palette image with a transparent colour (mode P with a transparency entry)"
        image = _without_palette(image)
    if isinstance(image, Image.Image):
        check_pixels(*image.size, source)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            raise ImageFormatError(f"{source}: {image.mode} ({'16-bit' if '16' in image.mode else '32-bit'}) "
                                   "image; expected an 8-bit gray or RGB image (convert it explicitly first)")
        if image.mode == "P":
            image = image.convert("RGB")
        if image.mode in ("LA", "PA"):
            alpha_kind = f"{image.mode} image (gray or palette with an alpha channel)"
            image = image.convert("RGBA")
        if image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        array = np.asarray(image)
    elif isinstance(image, np.ndarray):
        if image.ndim >= 2:
            check_pixels(image.shape[1], image.shape[0], source)
        array = image
    else:
        raise ImageFormatError(f"{source}: expected a path, a PIL image or a numpy array, got {type(image).__name__}")

    if array.dtype != np.uint8:
        if array.dtype in (np.uint16, np.int32, np.uint32) or array.dtype.kind == "f":
            raise ImageFormatError(f"{source}: {array.dtype} image; expected uint8 (8-bit). "
                                   "Rescale it to 0..255 and cast explicitly")
        raise ImageFormatError(f"{source}: unsupported dtype {array.dtype}; expected uint8")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        if not allow_rgba:
            raise ImageFormatError(f"{source}: {alpha_kind}; expected gray or RGB. "
                                   "Drop or composite the transparency explicitly (e.g. PIL's .convert('RGB'))")
        array = array[:, :, :3]
    elif not (array.ndim == 3 and array.shape[2] == 3):
        raise ImageFormatError(f"{source}: array of shape {array.shape}; expected H×W, H×W×1 or H×W×3")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageFormatError(f"{source}: empty image of shape {array.shape}")
    return np.ascontiguousarray(array)
