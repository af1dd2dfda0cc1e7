"""Real example scans shipped inside the package (CC BY 4.0; `m2dino/examples/ATTRIBUTION.md`), used by
the demo and by model cards."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

EXAMPLES_DIR = Path(str(files("m2dino") / "examples"))


def example_images() -> list[Path]:
    """The bundled scans, sorted by name: an African-planes fetal brain plane and an HC18 fetal head."""
    return sorted(EXAMPLES_DIR.glob("*.png"))
