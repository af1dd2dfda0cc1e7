"""Each prediction type drawn on its image, in the image's original pixels.

One drawer and one one-line description per prediction type (the tables at the bottom), so a new
prediction type is one entry here, not a branch in every caller.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from ..image import ImageLike, to_rgb_uint8
from ..models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    Prediction,
    ScalarPrediction,
    SegmentationPrediction,
)
from ..tasks import TaskSpec
from .style import class_color, draw_caption, font_for, line_width, text_box

MASK_ALPHA = 0.45


def keypoint_distance(prediction: KeypointPrediction) -> float | None:
    """The measured distance (pixels) of a two-point task (a femur length, a cervical length), else None."""
    points = np.asarray(prediction.points, dtype=np.float64)
    return float(np.linalg.norm(points[1] - points[0])) if len(points) == 2 else None


def _class_name(spec: TaskSpec, index: int) -> str:
    return spec.class_names[index] if 0 <= index < len(spec.class_names) else f"class {index}"


# ------------------------------------------------------------------------------ descriptions
def describe_segmentation(p: SegmentationPrediction, spec: TaskSpec) -> str:
    counts = np.bincount(p.mask.ravel(), minlength=spec.num_classes)
    found = [f"{_class_name(spec, c)} {100 * counts[c] / p.mask.size:.1f}%" for c in range(1, len(counts)) if counts[c]]
    return (", ".join(found) + " of the image") if found else "nothing found"


def describe_classification(p: ClassificationPrediction, spec: TaskSpec) -> str:
    return f"{_class_name(spec, p.class_index)} ({100 * float(p.probs[p.class_index]):.1f}%)"


def describe_detection(p: DetectionPrediction, spec: TaskSpec) -> str:
    if len(p.boxes) == 0:
        return "no box"
    best = ", ".join(f"{_class_name(spec, int(label))} {float(score):.2f}"
                     for label, score in zip(p.labels[:3], p.scores[:3]))
    return f"{len(p.boxes)} box{'es' if len(p.boxes) > 1 else ''} ({best})"


def describe_keypoints(p: KeypointPrediction, spec: TaskSpec) -> str:
    distance = keypoint_distance(p)
    text = f"{len(p.points)} points"
    return text + (f", distance {distance:.1f} px" if distance is not None else "")


def describe_scalar(p: ScalarPrediction, spec: TaskSpec) -> str:
    return f"{p.value:.1f} {p.unit or spec.scalar_unit or ''}".rstrip()


# ------------------------------------------------------------------------------ drawers
def draw_segmentation(image: Image.Image, p: SegmentationPrediction, spec: TaskSpec,
                       scale: float = 1.0) -> Image.Image:
    """Each foreground class as a translucent colour with an opaque outline, and a legend: the class names
    written in their colours."""
    rgb = np.asarray(image).astype(np.float32)
    mask = np.asarray(p.mask)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"{spec.id}: mask of shape {mask.shape} on an image of {rgb.shape[:2]}; "
                         "expected the mask at the image's original size")
    # A pixel is on the outline when a 4-neighbour has another class (edges of the image excluded).
    edge = np.zeros(mask.shape, dtype=bool)
    edge[1:, :] |= mask[1:, :] != mask[:-1, :]
    edge[:-1, :] |= mask[:-1, :] != mask[1:, :]
    edge[:, 1:] |= mask[:, 1:] != mask[:, :-1]
    edge[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    for c in range(1, max(spec.num_classes, int(mask.max()) + 1)):
        region = mask == c
        if region.any():
            color = np.array(class_color(c - 1), dtype=np.float32)
            rgb[region] = (1 - MASK_ALPHA) * rgb[region] + MASK_ALPHA * color
            rgb[region & edge] = color
    out = Image.fromarray(rgb.round().astype(np.uint8))
    draw = ImageDraw.Draw(out, "RGBA")
    font = font_for(out.size, scale)
    y = out.size[1]
    for c in range(spec.num_classes - 1, 0, -1):  # legend bottom-up in the bottom-left corner
        box = text_box(draw, (0, y), _class_name(spec, c), font, color=class_color(c - 1), anchor_bottom=True)
        y = box[1]
    return out


def draw_detection(image: Image.Image, p: DetectionPrediction, spec: TaskSpec,
                    scale: float = 1.0) -> Image.Image:
    """Boxes (best first) outlined in their class colour, each labelled with class and score."""
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    font, width = font_for(out.size, scale), line_width(out.size, scale)
    for box, score, label in reversed(list(zip(p.boxes, p.scores, p.labels))):  # best drawn last, on top
        x0, y0, x1, y1 = (float(v) for v in box)
        color = class_color(int(label))
        draw.rectangle((x0, y0, max(x0, x1), max(y0, y1)), outline=color, width=width)
        text_box(draw, (x0, y0), f"{_class_name(spec, int(label))} {float(score):.2f}", font, color=color,
                 anchor_bottom=True)
    return out


def draw_keypoints(image: Image.Image, p: KeypointPrediction, spec: TaskSpec,
                    scale: float = 1.0) -> Image.Image:
    """Numbered points; the two points of a distance task joined by a line labelled with its length."""
    out = image.copy()
    draw = ImageDraw.Draw(out, "RGBA")
    font, width = font_for(out.size, scale), line_width(out.size, scale)
    points = [(float(x), float(y)) for x, y in np.asarray(p.points)]
    distance = keypoint_distance(p)
    if distance is not None:
        draw.line(points, fill=class_color(9), width=width)
        middle = ((points[0][0] + points[1][0]) / 2, (points[0][1] + points[1][1]) / 2)
        text_box(draw, (middle[0] + 2 * width, middle[1]), f"{distance:.1f} px", font, color=class_color(9))
    radius = 2 * width + 1
    for k, (x, y) in enumerate(points):
        color = class_color(k)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color, outline=(0, 0, 0), width=1)
        text_box(draw, (x + radius, y - radius), str(k + 1), font, color=color, anchor_bottom=True)
    return out


def draw_classification(image: Image.Image, p: ClassificationPrediction, spec: TaskSpec,
                         scale: float = 1.0) -> Image.Image:
    """The predicted class and its probability, then the runners-up, on a band at the top."""
    order = np.argsort(-np.asarray(p.probs))[:3]
    lines = [describe_classification(p, spec)]
    runners_up = [int(c) for c in order if int(c) != p.class_index][:2]
    lines += [f"  {_class_name(spec, c)} {100 * float(p.probs[c]):.1f}%" for c in runners_up]
    return draw_caption(image, lines, scale)


def draw_scalar(image: Image.Image, p: ScalarPrediction, spec: TaskSpec,
                 scale: float = 1.0) -> Image.Image:
    return draw_caption(image, [describe_scalar(p, spec)], scale)


DRAWERS: dict[type, Callable[[Image.Image, Prediction, TaskSpec, float], Image.Image]] = {
    SegmentationPrediction: draw_segmentation,
    ClassificationPrediction: draw_classification,
    DetectionPrediction: draw_detection,
    KeypointPrediction: draw_keypoints,
    ScalarPrediction: draw_scalar,
}
DESCRIBERS: dict[type, Callable[[Prediction, TaskSpec], str]] = {
    SegmentationPrediction: describe_segmentation,
    ClassificationPrediction: describe_classification,
    DetectionPrediction: describe_detection,
    KeypointPrediction: describe_keypoints,
    ScalarPrediction: describe_scalar,
}


def _lookup(table: dict, prediction: Prediction, what: str):
    try:
        return table[type(prediction)]
    except KeyError:
        raise TypeError(f"cannot {what} a {type(prediction).__name__}; expected one of "
                        f"{', '.join(t.__name__ for t in table)}") from None


def describe(prediction: Prediction, spec: TaskSpec) -> str:
    """One line a person reads, without the task's name: ``Fetal brain (87.2%)``, ``172.4 mm``, ``2 points,
    distance 81.0 px``."""
    return _lookup(DESCRIBERS, prediction, "describe")(prediction, spec)


def draw_prediction(image: ImageLike, prediction: Prediction, spec: TaskSpec, scale: float = 1.0) -> Image.Image:
    """``prediction`` (in original pixels, as `M2DINO.predict` returns it) drawn on ``image``: an RGB PIL image
    of the image's original size. Gray scans are drawn on as RGB. ``scale`` enlarges text and lines for an
    overlay that will be shown shrunk by that factor."""
    base = Image.fromarray(to_rgb_uint8(image, allow_rgba=True))
    return _lookup(DRAWERS, prediction, "draw")(base, prediction, spec, scale)
