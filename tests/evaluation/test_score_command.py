"""`m2dino score` end to end on a tiny FMC root built here (CSV paths relative to csv_files/)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from m2dino.cli.main import main
from m2dino.evaluation.submission import SubmissionEntry, write_submission
from m2dino.models.predictions import ClassificationPrediction, KeypointPrediction, SegmentationPrediction

COLUMNS = ["task_id", "task_name", "num_classes", "image_path", "mask_path", "mask", "x_min", "y_min", "x_max",
           "y_max", "point_1_xy", "point_2_xy"]
SEG_IMAGE, SEG_MASK = "../Segmentation/Two/hc/IMAGES/a.png", "../Segmentation/Two/hc/MASKS/a.png"
CLS_IMAGE, REG_IMAGE = "../Classification/bus/b.png", "../Regression/fugc/c.png"


def save(root, relative, array):
    path = root / "csv_files" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def fmc_root(tmp_path):
    root = tmp_path / "fmc"
    (root / "csv_files").mkdir(parents=True)
    gt = np.zeros((6, 8), np.uint8)
    gt[1:3, 1:3] = 1
    save(root, SEG_IMAGE, np.zeros((6, 8, 3), np.uint8))
    save(root, SEG_MASK, gt)
    save(root, CLS_IMAGE, np.zeros((5, 5), np.uint8))
    save(root, REG_IMAGE, np.zeros((10, 10), np.uint8))
    rows = [{"task_id": "fetal_head", "task_name": "segmentation", "num_classes": 2, "image_path": SEG_IMAGE,
             "mask_path": SEG_MASK},
            {"task_id": "breast_2cls", "task_name": "classification", "num_classes": 2, "image_path": CLS_IMAGE,
             "mask": 1},
            {"task_id": "FUGC", "task_name": "Regression", "num_classes": 2, "image_path": REG_IMAGE,
             "point_1_xy": "[1, 1]", "point_2_xy": "[4, 5]"}]
    with open(root / "csv_files/train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_score_writes_metrics_and_report(fmc_root, tmp_path, capsys):
    pred = np.zeros((6, 8), np.uint8)
    pred[1:3, 1:4] = 1                                     # Dice 2*4/(4+6) = 0.8
    write_submission([SubmissionEntry("fetal_head", SEG_IMAGE, SegmentationPrediction(pred), mask_path=SEG_MASK),
                      SubmissionEntry("breast_2cls", CLS_IMAGE, ClassificationPrediction(1, np.array([0.1, 0.9])))],
                     tmp_path / "pred")
    out = tmp_path / "out/metrics.json"
    # FUGC has no prediction: the scores are written, and the exit code says they are incomplete
    assert main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(out), "--quiet"]) == 3
    assert "1 prediction(s) missing or invalid" in capsys.readouterr().err
    metrics = json.loads(out.read_text())
    assert list(metrics) == ["segmentation", "classification", "regression", "summary"]
    assert metrics["segmentation"]["fetal_head"]["DSC"] == pytest.approx(0.8)
    assert metrics["classification"]["breast_2cls"]["Accuracy"] == 1.0
    assert metrics["classification"]["breast_2cls"]["AUC"] is None     # one class: scikit-learn's NaN, as theirs
    assert metrics["summary"]["additional_metrics"]["breast_2cls"]["AUC_present_classes"] is None
    assert metrics["summary"]["complete"] is False
    assert metrics["summary"]["by_type"]["regression"]["MRE"] == pytest.approx(200 ** 0.5)  # strict: the 10×10 diagonal
    assert metrics["regression"]["FUGC"] == {"MRE": 0.0, "num_samples": 0}
    assert metrics["summary"]["problems"]["FUGC"]["missing"] == 1
    assert "| fetal_head | fetal | 1 | 0.8000 |" in (tmp_path / "out/metrics.md").read_text()
    assert capsys.readouterr().out == ""
    assert main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(out), "--quiet",
                 "--allow-missing"]) == 0


def test_score_prints_a_summary_and_honours_tasks(fmc_root, tmp_path, capsys):
    write_submission([SubmissionEntry("FUGC", REG_IMAGE, KeypointPrediction(np.array([[1.0, 1.0], [1.0, 1.0]])))],
                     tmp_path / "pred")
    out = tmp_path / "metrics.json"
    assert main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(out),
                 "--tasks", "FUGC"]) == 0
    assert list(json.loads(out.read_text())) == ["regression", "summary"]
    printed = capsys.readouterr().out
    assert "regression: 1 task(s), 1 image(s): MRE 2.5000" in printed and f"wrote {out}" in printed


def test_malformed_submission_is_a_one_line_error(fmc_root, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred/regression_predictions.json").write_text('[{"image_path": "x", "task_id": "FUGC"}]')
    code = main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(tmp_path / "m.json")])
    assert code == 2
    assert "regression_predictions.json: entry 0: missing key 'predicted_points_pixels'" in capsys.readouterr().err


def test_missing_data_root_is_an_error(tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    code = main(["score", "--data", str(tmp_path / "nope"), "--pred", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "m.json")])
    assert code == 2 and "no csv_files/ folder" in capsys.readouterr().err


def test_groups_file_replaces_the_clinical_groups(fmc_root, tmp_path):
    write_submission([], tmp_path / "pred")
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"mine": ["fetal_head", "breast_2cls", "FUGC"]}))
    out = tmp_path / "metrics.json"
    assert main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(out),
                 "--groups", str(groups), "--quiet", "--allow-missing"]) == 0
    summary = json.loads(out.read_text())["summary"]
    assert list(summary["by_group"]) == ["mine"] and set(summary["groups"].values()) == {"mine"}


def test_unknown_task_is_an_error(fmc_root, tmp_path, capsys):
    write_submission([], tmp_path / "pred")
    code = main(["score", "--data", str(fmc_root), "--pred", str(tmp_path / "pred"), "--out", str(tmp_path / "m.json"),
                 "--tasks", "fetal_hed"])
    assert code == 2 and "unknown task id 'fetal_hed'" in capsys.readouterr().err
