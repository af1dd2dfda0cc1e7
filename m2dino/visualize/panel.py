"""All of one image's task predictions (`M2DINO.predict_all`) as one panel: a titled tile per task."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from PIL import Image, ImageDraw

from ..image import ImageLike, to_rgb_uint8
from ..models.predictions import Prediction
from ..tasks import TaskSpec, get_task
from .overlay import draw_prediction
from .style import font_for, text_box

BACKGROUND = (24, 24, 24)
GAP = 4  # pixels between tiles


def panel_layout(image_size: tuple[int, int], tasks: int, tile_width: int | None,
                 columns: int | None = None) -> tuple[int, int, int, int]:
    """(tile width, tile height, columns, rows) of the panel of ``tasks`` tiles for an image of
    ``image_size`` (H, W); its size in pixels is `panel_size`."""
    height, width = image_size
    tile_width = tile_width or width
    tile_height = max(1, round(height * tile_width / width))
    columns = columns or min(tasks, 3)
    return tile_width, tile_height, columns, math.ceil(tasks / columns)


def panel_size(layout: tuple[int, int, int, int]) -> tuple[int, int]:
    tile_width, tile_height, columns, rows = layout
    return columns * tile_width + (columns - 1) * GAP, rows * tile_height + (rows - 1) * GAP


def draw_panel(image: ImageLike, predictions: Mapping[str, Prediction],
               spec_for: Callable[[str], TaskSpec] = get_task, tile_width: int | None = 480,
               columns: int | None = None) -> Image.Image:
    """One tile per task (in the order of ``predictions``), each the task's overlay titled with its id.

    Tiles are scaled to ``tile_width`` (None: the original size). The overlays are drawn at the original
    size first, so the drawing is exact, with text and lines enlarged by the shrink factor so they stay
    legible. ``spec_for`` maps a task id to its spec (pass ``model.task_spec`` for a model's own tasks).
    """
    if not predictions:
        raise ValueError("draw_panel: no predictions to draw (expected a task -> prediction mapping)")
    array = to_rgb_uint8(image, allow_rgba=True)
    width = array.shape[1]
    layout = panel_layout(array.shape[:2], len(predictions), tile_width, columns)
    tile_width, tile_height, columns, _ = layout
    panel = Image.new("RGB", panel_size(layout), BACKGROUND)
    font = font_for((tile_width, tile_height), minimum=14)
    shrink = max(1.0, width / tile_width)  # text and lines drawn this much larger stay legible once scaled down
    for i, (task, prediction) in enumerate(predictions.items()):
        tile = draw_prediction(array, prediction, spec_for(task), shrink).resize((tile_width, tile_height),
                                                                               Image.LANCZOS)
        draw = ImageDraw.Draw(tile, "RGBA")
        text_box(draw, (tile_width, tile_height), task, font, anchor_bottom=True)  # bottom-right: clear of captions
        panel.paste(tile, ((i % columns) * (tile_width + GAP), (i // columns) * (tile_height + GAP)))
    return panel
