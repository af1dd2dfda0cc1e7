"""Overlays on hand-made predictions: pixels at known places change colour, everything else stays."""

import json

import numpy as np
import pytest

from m2dino.models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    ScalarPrediction,
    SegmentationPrediction,
)
from m2dino.tasks import get_task
from m2dino.visualize import (
    describe,
    draw_panel,
    draw_prediction,
    prediction_to_dict,
    predictions_to_dict,
    rle_decode,
    rle_encode,
)
from m2dino.visualize.overlay import MASK_ALPHA
from m2dino.visualize.style import class_color

GRAY = 90
H, W = 120, 160


def scan() -> np.ndarray:
    return np.full((H, W), GRAY, dtype=np.uint8)  # gray, as ultrasound usually is


def pixel(image, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.asarray(image)[y, x])


def test_mask_is_drawn_translucent_in_its_class_colour_with_an_opaque_outline():
    mask = np.zeros((H, W), np.uint8)
    mask[30:60, 40:90] = 1
    mask[70:80, 100:120] = 3  # fetal_abdomen_multi: background + 4 structures
    out = draw_prediction(scan(), SegmentationPrediction(mask=mask), get_task("fetal_abdomen_multi"))
    assert out.mode == "RGB" and out.size == (W, H)  # the original size
    blend = lambda c: tuple(round((1 - MASK_ALPHA) * GRAY + MASK_ALPHA * v) for v in c)  # noqa: E731
    assert pixel(out, 60, 45) == blend(class_color(0))
    assert pixel(out, 110, 75) == blend(class_color(2))
    assert pixel(out, 40, 45) == class_color(0)       # the region's edge
    assert pixel(out, 140, 20) == (GRAY,) * 3           # background untouched
    assert pixel(out, 120, 75) == (GRAY,) * 3


def test_mask_of_another_size_is_rejected_naming_the_task():
    with pytest.raises(ValueError, match="fetal_head: mask of shape \\(10, 10\\)"):
        draw_prediction(scan(), SegmentationPrediction(mask=np.zeros((10, 10), np.uint8)), get_task("fetal_head"))


def test_box_outline_in_class_colour_and_inside_left_alone():
    prediction = DetectionPrediction(boxes=np.array([[20.0, 40.0, 100.0, 110.0]]), scores=np.array([0.87]),
                                     labels=np.array([0]))
    out = draw_prediction(scan(), prediction, get_task("fetal_head_det"))
    assert pixel(out, 60, 110) == class_color(0)   # bottom edge
    assert pixel(out, 20, 80) == class_color(0)    # left edge
    assert pixel(out, 60, 80) == (GRAY,) * 3       # inside the box
    assert describe(prediction, get_task("fetal_head_det")) == "1 box (fetal_head 0.87)"
    # For a tile shown at a quarter of the size, lines are drawn 4× as wide (2 px → 8 px).
    assert pixel(out, 60, 104) == (GRAY,) * 3
    thick = draw_prediction(scan(), prediction, get_task("fetal_head_det"), scale=4)
    assert pixel(thick, 60, 104) == class_color(0) and pixel(thick, 60, 80) == (GRAY,) * 3


def test_two_keypoints_are_joined_and_measured_three_are_not():
    two = KeypointPrediction(points=np.array([[20.0, 100.0], [140.0, 100.0]]))
    out = draw_prediction(scan(), two, get_task("fetal_femur"))
    assert pixel(out, 20, 100) == class_color(0) and pixel(out, 140, 100) == class_color(1)  # the points
    assert pixel(out, 50, 100) == class_color(9)   # the line joining them
    assert describe(two, get_task("fetal_femur")) == "2 points, distance 120.0 px"
    three = KeypointPrediction(points=np.array([[20.0, 100.0], [140.0, 100.0], [80.0, 20.0]]))
    out = draw_prediction(scan(), three, get_task("IUGC"))
    assert pixel(out, 80, 20) == class_color(2)
    assert pixel(out, 50, 100) == (GRAY,) * 3      # no distance line for a three-point task
    assert describe(three, get_task("IUGC")) == "3 points"


def test_class_and_measurement_are_written_on_a_band_at_the_top():
    spec = get_task("fetal_plane_cls")
    prediction = ClassificationPrediction(class_index=1, probs=np.array([0.05, 0.6, 0.2, 0.05, 0.05, 0.05]))
    assert describe(prediction, spec) == "fetal_brain (60.0%)"
    out = np.asarray(draw_prediction(scan(), prediction, spec))
    assert (out[:5, :40] != GRAY).any()             # the band (darkened, with text)
    assert (out[-20:] == GRAY).all()                # the rest of the scan untouched
    scalar = ScalarPrediction(value=172.44, unit="mm")
    assert describe(scalar, get_task("fetal_head_circumference")) == "172.4 mm"
    out = np.asarray(draw_prediction(scan(), scalar, get_task("fetal_head_circumference")))
    assert (out[:5, :20] < GRAY).any() and (out[-20:] == GRAY).all()


def test_panel_has_one_titled_tile_per_task_in_order():
    mask = np.zeros((H, W), np.uint8)
    mask[:, :80] = 1  # left half of the scan
    predictions = {"fetal_head": SegmentationPrediction(mask=mask),
                   "fetal_head_circumference": ScalarPrediction(value=170.0, unit="mm")}
    panel = draw_panel(scan(), predictions, tile_width=200)
    assert panel.size == (2 * 200 + 4, 150)          # two tiles of 200×150 and a 4 px gap
    assert pixel(panel, 50, 75) != (GRAY,) * 3       # first tile: the mask's left half
    assert pixel(panel, 150, 75) == (GRAY,) * 3
    assert pixel(panel, 304, 75) == (GRAY,) * 3      # second tile: the scan under a caption
    assert draw_panel(scan(), predictions, tile_width=None).size == (2 * W + 4, H)
    with pytest.raises(ValueError, match="no predictions"):
        draw_panel(scan(), {})


def test_unknown_prediction_type_is_a_clear_error():
    with pytest.raises(TypeError, match="cannot draw a dict"):
        draw_prediction(scan(), {"mask": 1}, get_task("fetal_head"))


@pytest.mark.parametrize("first", [0, 1])
def test_rle_round_trip(first):
    rng = np.random.default_rng(first)
    binary = rng.random((7, 5)) > 0.5
    binary[0, 0] = bool(first)
    rle = rle_encode(binary)
    assert rle["size"] == [7, 5] and sum(rle["counts"]) == 35
    assert (rle["counts"][0] == 0) == bool(first)    # COCO runs start with background
    np.testing.assert_array_equal(rle_decode(rle), binary)
    with pytest.raises(ValueError, match="expected 7×6"):
        rle_decode({"size": [7, 6], "counts": rle["counts"]})


def test_json_export_in_original_pixels():
    mask = np.zeros((H, W), np.uint8)
    mask[10:20, 30:35] = 1
    predictions = {
        "fetal_head": SegmentationPrediction(mask=mask),
        "fetal_plane_cls": ClassificationPrediction(class_index=0, probs=np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])),
        "fetal_head_det": DetectionPrediction(boxes=np.array([[1.5, 2.0, 30.0, 40.0]]), scores=np.array([0.9]),
                                              labels=np.array([0])),
        "fetal_femur": KeypointPrediction(points=np.array([[0.0, 0.0], [3.0, 4.0]])),
        "fetal_head_circumference": ScalarPrediction(value=150.5, unit="mm"),
    }
    result = json.loads(json.dumps(predictions_to_dict(predictions, get_task, source="a.png", image_size=(H, W))))
    assert result["image"] == "a.png" and (result["height"], result["width"]) == (H, W)
    head = result["predictions"]["fetal_head"]
    assert head["label_kind"] == "mask" and head["classes"][0]["name"] == "fetal_head"
    assert head["classes"][0]["area_px"] == 50
    np.testing.assert_array_equal(rle_decode(head["classes"][0]["rle"]), mask == 1)
    cls = result["predictions"]["fetal_plane_cls"]
    assert cls["class_name"] == "fetal_abdomen" and cls["probabilities"]["fetal_brain"] == pytest.approx(0.1)
    box = result["predictions"]["fetal_head_det"]["boxes"][0]
    assert box == {"box_xyxy": [1.5, 2.0, 30.0, 40.0], "score": pytest.approx(0.9), "label": 0,
                   "label_name": "fetal_head"}
    femur = result["predictions"]["fetal_femur"]
    assert femur["points_xy"] == [[0.0, 0.0], [3.0, 4.0]] and femur["distance_px"] == 5.0
    assert result["predictions"]["fetal_head_circumference"] == {
        "task": "fetal_head_circumference", "label_kind": "scalar", "summary": "150.5 mm", "value": 150.5, "unit": "mm"}
    with pytest.raises(TypeError, match="cannot export"):
        prediction_to_dict(object(), get_task("fetal_head"))
