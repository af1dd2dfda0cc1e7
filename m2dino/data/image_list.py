"""A list of image paths as users hand them over: one path per line (``#`` comments), or a CSV whose
``image`` column (else its first column) holds them, e.g. the ``picked.csv`` of `m2dino select`.
Read by ``m2dino select --labelled`` and the recipes' ``--train-images``."""

from __future__ import annotations

import csv
from pathlib import Path


def read_image_list(path: str | Path) -> list[str]:
    """The paths in ``path``, as written (resolving them is the caller's business)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() != ".csv":
        return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    rows = [row for row in csv.reader(text.splitlines()) if row and row[0].strip()]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    if "image" in header:
        column = header.index("image")
        return [row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()]
    return [row[0].strip() for row in rows]
