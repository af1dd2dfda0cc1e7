"""A small reader of MetaImage files (``.mha``, header and data in one file), enough for PSFHS.

PSFHS stores 256×256 uint8 images and label maps, uncompressed. SimpleITK reads them too, but it
is a ~50 MB compiled dependency for what is a text header and a raw byte array; this reader covers
the MetaImage subset such datasets use (local data, 2-D or 3-D, integer or float elements, raw or
zlib-compressed) and refuses anything else with an error naming the file and the key.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError, MissingFileError

_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2", "MET_UINT": "u4",
          "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
_MAX_HEADER = 64 * 1024


def read_mha(path: str | Path) -> np.ndarray:
    """The array of a ``.mha`` file, indexed like SimpleITK's ``GetArrayFromImage``: the last
    ``DimSize`` first (a 3-D ``DimSize = 256 256 3`` gives shape (3, 256, 256))."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"MHA file not found: {path}") from None
    header, offset = _header(raw, path)
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        dtype = np.dtype(_TYPES[header["ElementType"]])
    except KeyError as err:
        raise DataError(f"{path}: MetaImage header has no usable {err.args[0]!r} "
                        f"(ElementType one of {', '.join(_TYPES)})") from None
    except ValueError:
        raise DataError(f"{path}: DimSize {header['DimSize']!r}; expected integers") from None
    if int(header.get("ElementNumberOfChannels", "1")) != 1:
        raise DataError(f"{path}: ElementNumberOfChannels {header['ElementNumberOfChannels']}; expected 1")
    if header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")) == "True":
        dtype = dtype.newbyteorder(">")
    data = raw[offset:]
    if header.get("CompressedData", "False") == "True":
        try:
            data = zlib.decompress(data)
        except zlib.error as err:
            raise DataError(f"{path}: CompressedData = True but the data does not inflate ({err})") from None
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} data bytes; expected {expected} for DimSize {dims} of "
                        f"{header['ElementType']}")
    return np.frombuffer(data, dtype=dtype).reshape(dims[::-1]).astype(dtype.newbyteorder("="))


def _header(raw: bytes, path: Path) -> tuple[dict[str, str], int]:
    """``{key: value}`` of the text header and the offset of the data that follows it."""
    header, offset = {}, 0
    while offset < min(len(raw), _MAX_HEADER):
        end = raw.find(b"\n", offset)
        if end < 0:
            break
        key, sep, value = raw[offset:end].decode("latin-1").partition("=")
        offset = end + 1
        if not sep:
            raise DataError(f"{path}: not a MetaImage file (header line {raw[offset:end][:40]!r} has no '=')")
        header[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            if value.strip() != "LOCAL":
                raise DataError(f"{path}: ElementDataFile = {value.strip()}; only LOCAL (one-file .mha) is read")
            return header, offset
    raise DataError(f"{path}: not a MetaImage file (no 'ElementDataFile = LOCAL' line ending the header)")
