"""16-bit colour images are rejected (Pillow would silently keep only their high byte); 16-bit gray
images load as mode I;16 and are rejected by mode (tests/models/test_bad_input.py)."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from m2dino.image import io
from m2dino.image.io import ImageFormatError, to_rgb_uint8


def write_png16(path, array: np.ndarray, color_type: int) -> None:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    height, width = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels, color_type, mode", [(3, 2, "RGB"), (4, 6, "RGBA"), (2, 4, "LA")])
def test_a_16_bit_png_is_rejected_naming_the_file(tmp_path, channels, color_type, mode):
    path = tmp_path / f"scan_{mode}.png"
    scan = np.full((8, 10, channels), 4095, np.uint16)  # a 12-bit scan at full brightness
    write_png16(path, scan, color_type)
    with pytest.raises(ImageFormatError, match=f"{path}: 16-bit image \\({mode}, 16 bits per sample\\); expected an "
                                               "8-bit gray or RGB image"):
        to_rgb_uint8(path)


def test_16_bit_pngs_are_what_pillow_cuts_to_8_bits(tmp_path):
    """The failure the check prevents: Pillow's own decoding of the same file."""
    path = tmp_path / "scan.png"
    write_png16(path, np.full((8, 10, 3), 4095, np.uint16), 2)
    assert np.asarray(Image.open(path)).max() == 15


def test_an_8_bit_png_still_reads(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(np.full((8, 10, 3), 200, np.uint8)).save(path)
    assert to_rgb_uint8(path).max() == 200 and io.read_image(path).mode == "RGB"
