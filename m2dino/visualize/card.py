"""An example overlay embedded in a saved model's card (README.md): what the model's outputs look like."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ..image import ImageLike, to_rgb_uint8
from ..models import M2DINO
from .examples import example_images
from .panel import draw_panel

EXAMPLE_FILE = "example.png"
MAX_TASKS = 6  # more tiles than this are unreadable at a card's width
SECTION = re.compile(r"^## Example\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)


def default_example() -> Path:
    """The synthetic fetal-head example scan."""
    return example_images()[0]


def add_card_example(model: M2DINO, directory: str | Path, image: ImageLike | None = None,
                     tasks: Sequence[str] | None = None, credit: str | None = None, tile_width: int = 360) -> Path:
    """Draw ``model``'s predictions of ``tasks`` (default: its first six) on ``image`` (default: the synthetic
    fetal-head example), save them as ``directory/example.png`` and embed it in ``directory/README.md`` (saved by
    `save_pretrained`). Running it again replaces the example. Returns the PNG's path."""
    directory = Path(directory)
    card = directory / "README.md"
    if not card.is_file():
        raise FileNotFoundError(f"no model card at {card}: save the model there first (model.save_pretrained)")
    tasks = list(tasks or model.task_ids[:MAX_TASKS])
    if image is None:
        image = default_example()
        credit = credit or "a synthetic fetal-head scan (m2dino.data.synthetic), not a real patient's"
    name = Path(image).name if isinstance(image, (str, Path)) else "an example scan"
    array = to_rgb_uint8(image, allow_rgba=True)
    panel = draw_panel(array, model.predict_all(array, tasks=tasks), model.task_spec, tile_width=tile_width)
    path = directory / EXAMPLE_FILE
    panel.save(path)
    shown = f"{len(tasks)} of its {len(model.task_ids)} tasks" if len(tasks) < len(model.task_ids) else \
        f"its {len(tasks)} task{'s' if len(tasks) > 1 else ''}"
    section = (f"## Example\n\n![Predictions of this model on an example scan]({EXAMPLE_FILE})\n\n"
               f"This model's predictions for {shown} on {credit or name}, drawn with `m2dino.visualize` "
               "(`m2dino predict` makes the same overlays). A tile for an organ the scan does not show only "
               "illustrates the output format.\n\n")
    text = card.read_text()
    if SECTION.search(text):
        text = SECTION.sub(lambda _: section, text, count=1)
    elif "\n## Usage" in text:
        text = text.replace("\n## Usage", "\n" + section + "## Usage", 1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card.write_text(text)
    return path
