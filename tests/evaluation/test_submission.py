import json

import numpy as np
import pytest
from PIL import Image

from m2dino.evaluation.submission import SubmissionEntry, prediction_mask_path, write_submission
from m2dino.evaluation.submission_reader import InvalidPrediction, SubmissionFormatError, read_submission
from m2dino.models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    ScalarPrediction,
    SegmentationPrediction,
)

MASK_PATH = "../Segmentation/Two/ds/MASKS/a.png"


def entries():
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:5] = 1
    return [
        SubmissionEntry("fetal_head", "../Segmentation/Two/ds/IMAGES/a.png", SegmentationPrediction(mask),
                        mask_path=MASK_PATH, original_size=(5, 7)),
        SubmissionEntry("breast_2cls", "../Classification/b/x.png", ClassificationPrediction(1, np.array([0.3, 0.7]))),
        SubmissionEntry("thyroid_nodule_det", "../Detection/t/y.png",
                        DetectionPrediction(np.array([[1, 2, 10, 12], [0, 0, 3, 3]]), np.array([0.9, 0.2]),
                                            np.array([0, 0]))),
        SubmissionEntry("FUGC", "../Regression/f/z.png", KeypointPrediction(np.array([[1.5, 2.0], [3.0, 4.5]]))),
    ]


def test_writes_the_benchmark_layout(tmp_path):
    written = write_submission(entries(), tmp_path)
    assert written.counts == {"classification_predictions.json": 1, "detection_predictions.json": 1,
                              "regression_predictions.json": 1, "measurement_predictions.json": 0, "Segmentation": 1}
    assert not (tmp_path / "measurement_predictions.json").exists()   # only the challenge's files without measurements
    png = tmp_path / "Segmentation/Two/ds/MASKS/a.png"
    with Image.open(png) as image:
        assert image.mode == "L" and image.size == (7, 5)
        assert np.asarray(image).sum() == 6
    assert json.loads((tmp_path / "classification_predictions.json").read_text()) == [
        {"image_path": "../Classification/b/x.png", "task_id": "breast_2cls", "predicted_class": 1,
         "predicted_probs": [0.3, 0.7]}]
    detection = json.loads((tmp_path / "detection_predictions.json").read_text())[0]
    assert detection["bbox_pixels"] == [1, 2, 10, 12] and detection["scores"] == [0.9, 0.2]
    assert json.loads((tmp_path / "regression_predictions.json").read_text())[0]["predicted_points_pixels"] == [
        1.5, 2.0, 3.0, 4.5]


def test_round_trip(tmp_path):
    write_submission(entries(), tmp_path)
    submission = read_submission(tmp_path)
    cls = submission.task_predictions("class", "breast_2cls")["../Classification/b/x.png"]
    assert cls.class_index == 1 and cls.probs.tolist() == [0.3, 0.7]
    det = submission.task_predictions("boxes", "thyroid_nodule_det")["../Detection/t/y.png"]
    assert det.best_box.tolist() == [1, 2, 10, 12] and det.scores.tolist() == [0.9, 0.2]
    reg = submission.task_predictions("keypoints", "FUGC")["../Regression/f/z.png"]
    assert reg.points.tolist() == [[1.5, 2.0], [3.0, 4.5]]
    assert submission.load_mask(MASK_PATH).shape == (5, 7)
    assert submission.load_mask("../Segmentation/Two/ds/MASKS/other.png") is None
    assert submission.absent_files == []


def test_mask_path_drops_every_parent_reference():
    assert str(prediction_mask_path("../Segmentation/Two/x/m.png")) == "Segmentation/Two/x/m.png"
    for bad in ("/etc/passwd", "", "../.."):
        with pytest.raises(ValueError, match="does not name a file inside"):
            prediction_mask_path(bad)


@pytest.mark.parametrize("entry, message", [
    (SubmissionEntry("fetal_head", "a.png", ClassificationPrediction(0, np.array([1.0, 0.0]))),
     "has mask labels but got a ClassificationPrediction"),
    (SubmissionEntry("fetal_head", "a.png", SegmentationPrediction(np.zeros((2, 2), np.uint8))),
     "needs the CSV's mask_path"),
    (SubmissionEntry("fetal_head", "a.png", SegmentationPrediction(np.zeros((2, 2), np.uint8)), mask_path=MASK_PATH,
                     original_size=(3, 2)), r"mask of size \(2, 2\) but the image is \(3, 2\)"),
    (SubmissionEntry("fetal_head", "a.png", SegmentationPrediction(np.zeros((2, 2), np.float32)), mask_path=MASK_PATH),
     "integer mask"),
    (SubmissionEntry("fetal_head_circumference", "a.png", KeypointPrediction(np.zeros((2, 2)))),
     "has scalar labels but got a KeypointPrediction"),
    (SubmissionEntry("my_task", "a.png", np.zeros(3)), "a ndarray has no place in the submission format"),
    (SubmissionEntry("FUGC", "a.png", KeypointPrediction(np.zeros(4))), "expected K×2 keypoints"),
])
def test_writer_rejects_what_the_format_cannot_hold(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        write_submission([entry], tmp_path)


def test_writer_rejects_two_predictions_for_one_image(tmp_path):
    entry = entries()[1]
    with pytest.raises(ValueError, match="two predictions for the same image"):
        write_submission([entry, entry], tmp_path)


def test_detection_without_box_is_skipped_and_reported(tmp_path):
    empty = DetectionPrediction(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))
    written = write_submission([SubmissionEntry("thyroid_nodule_det", "a.png", empty)], tmp_path)
    assert written.skipped == ["thyroid_nodule_det / a.png: detection without any box"]
    assert json.loads((tmp_path / "detection_predictions.json").read_text()) == []


def write_json(folder, name, data):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))


@pytest.mark.parametrize("data, message", [
    ("{not json", r"classification_predictions.json: not valid JSON"),
    ({"a": 1}, "expected a JSON list of entries, got dict"),
    ([3], "entry 0: expected an object, got int"),
    ([{"image_path": "a", "task_id": "t", "predicted_class": 0}, {"image_path": "b", "task_id": "t"}],
     "classification_predictions.json: entry 1: missing key 'predicted_class'"),
    ([{"image_path": 3, "task_id": "t", "predicted_class": 0}], "entry 0: missing or non-string 'image_path'"),
])
def test_malformed_files_are_clear_errors(tmp_path, data, message):
    write_json(tmp_path, "classification_predictions.json", data)
    with pytest.raises(SubmissionFormatError, match=message):
        read_submission(tmp_path)


def test_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="submission folder not found"):
        read_submission(tmp_path / "nope")


def test_unusable_values_become_invalid_predictions(tmp_path):
    write_json(tmp_path, "classification_predictions.json", [
        {"image_path": "a", "task_id": "t", "predicted_class": "1"},
        {"image_path": "b", "task_id": "t", "predicted_class": 1, "predicted_probs": "high"},
        {"image_path": "c", "task_id": "t", "predicted_class": 2},
        {"image_path": "c", "task_id": "t", "predicted_class": 1.0}])
    write_json(tmp_path, "detection_predictions.json", [
        {"image_path": "a", "task_id": "d", "bbox_pixels": [1, 2, 3]},
        {"image_path": "b", "task_id": "d", "bbox_pixels": [0, 0, 1, 1], "boxes_pixels": [[0, 0, 2, 2]], "scores": [1]},
        {"image_path": "c", "task_id": "d", "bbox_pixels": [0, 0, 1, 1]}])
    write_json(tmp_path, "regression_predictions.json", [
        {"image_path": "a", "task_id": "r", "predicted_points_pixels": [1, 2, 3]}])
    submission = read_submission(tmp_path)
    cls = submission.task_predictions("class", "t")
    assert cls["a"] == InvalidPrediction("predicted_class must be an integer, got '1'")
    assert cls["b"] == InvalidPrediction("predicted_probs must be a list of numbers")
    assert cls["c"].class_index == 1 and cls["c"].probs is None      # the last duplicate wins
    assert submission.duplicates == {"t": 1}
    det = submission.task_predictions("boxes", "d")
    assert "bbox_pixels must be 4 finite numbers" in det["a"].reason
    assert "boxes_pixels[0] equal to bbox_pixels" in det["b"].reason
    assert np.isnan(det["c"].scores).all()                            # the challenge's format has no score
    reg = submission.task_predictions("keypoints", "r")
    assert "flat list" in reg["a"].reason


def test_non_gray_or_unreadable_masks_are_invalid(tmp_path):
    folder = tmp_path / "Segmentation/Two/ds/MASKS"
    folder.mkdir(parents=True)
    Image.new("RGB", (3, 3)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png")
    submission = read_submission(tmp_path)
    rgb = submission.load_mask("../Segmentation/Two/ds/MASKS/a.png")
    assert rgb.reason.endswith("RGB image; expected an 8-bit gray PNG")
    assert "not a readable image" in submission.load_mask("../Segmentation/Two/ds/MASKS/b.png").reason
    assert sorted(submission.absent_files) == ["classification_predictions.json", "detection_predictions.json",
                                               "regression_predictions.json"]


def test_measurements_have_their_own_file_and_read_back(tmp_path):
    write_submission([SubmissionEntry("fetal_head_circumference", "../Regression/hc/a.png",
                                      ScalarPrediction(171.5, "mm"))],
                     tmp_path)
    assert json.loads((tmp_path / "measurement_predictions.json").read_text()) == [
        {"image_path": "../Regression/hc/a.png", "task_id": "fetal_head_circumference", "predicted_value": 171.5,
         "unit": "mm"}]
    submission = read_submission(tmp_path)
    assert submission.task_predictions("scalar", "fetal_head_circumference")["../Regression/hc/a.png"] == \
        ScalarPrediction(171.5, "mm")
