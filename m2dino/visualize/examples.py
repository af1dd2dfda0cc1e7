"""Example scans for the demo and the model cards: synthetic ultrasound (`m2dino.data.synthetic`), made
on first use in a cache folder. No real scan ships with the package: the public datasets are data, and
data is never committed or shipped (their adapters read a user's own download)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__

# A fetal head (the default card picture) and a fetal standard plane: the tasks most models here know.
EXAMPLE_TASKS = ("fetal_head", "fetal_plane_cls")
EXAMPLE_SIZE = (360, 480)  # (H, W): a scan's proportions, small enough to make in a fraction of a second
# M2DINO_EXAMPLES_DIR places them elsewhere (e.g. a server's read-only temp); the version keeps releases apart
EXAMPLES_DIR = Path(os.environ.get("M2DINO_EXAMPLES_DIR")
                    or Path(tempfile.gettempdir()) / f"m2dino-examples-{__version__}")


def example_images() -> list[Path]:
    """The example scans, sorted by name (one PNG per task of `EXAMPLE_TASKS`), made if missing."""
    paths = [EXAMPLES_DIR / f"synthetic_{task}.png" for task in EXAMPLE_TASKS]
    missing = [(task, path) for task, path in zip(EXAMPLE_TASKS, paths) if not path.is_file()]
    if missing:
        from ..data.synthetic import make_synthetic_samples

        EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
        for task, path in missing:
            (sample,) = make_synthetic_samples([task], per_task=1, image_size=EXAMPLE_SIZE, seed=0, split="example")
            partial = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent first uses never see half a file
            Image.fromarray(np.asarray(sample.image)).save(partial, format="PNG")
            partial.replace(path)
    return sorted(paths)
