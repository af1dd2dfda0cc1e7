"""The one error type for bad input data: the message names the file (and CSV row) and what was expected."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Input data that cannot be used as-is (bad CSV, label out of range, size mismatch, empty dataset...)."""


class MissingFileError(DataError, FileNotFoundError):
    """A file that a CSV or a dataset layout refers to does not exist."""


def location(path: str | Path, row: int | None = None) -> str:
    """``file.csv`` or ``file.csv, row 3``: the prefix every data error message starts with."""
    return f"{path}, row {row}" if row is not None else str(path)


def error_line(err: BaseException) -> str:
    """One line for a user error: an OSError's message with its path (without ``[Errno N]``), a
    KeyError's text without quotes, else ``str(err)``."""
    if isinstance(err, OSError) and err.strerror:
        line = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    elif isinstance(err, KeyError) and err.args:
        line = str(err.args[0])
    else:
        line = str(err)
    return " ".join(line.split()) or type(err).__name__
