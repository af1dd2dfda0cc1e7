"""Before a run loads any data: can its output folder be written, and does its disk have room?

A run that trains for hours and then cannot save is the worst failure, so the check happens first,
with a size estimated from the model: the final model and ``best`` (weights), plus the checkpoints
kept on disk, one more while the next is written (weights + AdamW's two moments each).
"""

from __future__ import annotations

import errno
import shutil
import tempfile
from pathlib import Path

MB = 2**20


def estimate_run_bytes(model_bytes: int, keep_checkpoints: int) -> int:
    checkpoint = 3 * model_bytes  # weights + exp_avg + exp_avg_sq
    return 2 * model_bytes + (keep_checkpoints + 1) * checkpoint


def check_output_dir(path: str | Path, needed_bytes: int) -> None:
    """Create ``path`` if needed, write and remove a probe file in it, and compare the free space
    with ``needed_bytes``; any failure is one OSError naming the folder."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise OSError(err.errno, f"output folder {path} is not writable: {err.strerror or err}") from None
    free = shutil.disk_usage(path).free
    if free < needed_bytes:
        raise OSError(errno.ENOSPC, f"not enough free space for the run in {path}: about {needed_bytes / MB:.0f} MB "
                                    f"needed (model, best model and checkpoints), {free / MB:.0f} MB free")
