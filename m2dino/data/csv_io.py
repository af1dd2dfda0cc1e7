"""Reading label CSVs with errors that name the file and what was expected."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from .errors import DataError, MissingFileError


def read_csv_rows(path: str | Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """``(row number, row)`` for every data row (numbered from 1, the header not counted).

    Raises `DataError` for a missing, undecodable or malformed file and for missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"CSV file not found: {path}")
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")))
        header = reader.fieldnames
        rows = list(enumerate(reader, start=1))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    if not header:
        raise DataError(f"{path}: empty CSV; expected a header row with {', '.join(required)}")
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(required)} "
                        f"(found {', '.join(header)})")
    return rows


def cell(row: dict[str, str], column: str, where: str) -> str:
    """A non-empty, stripped cell, or a `DataError` naming the row and column."""
    value = row.get(column)
    if value is None or not value.strip():
        raise DataError(f"{where}: empty value in column {column!r}")
    return value.strip()
