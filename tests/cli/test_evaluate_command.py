import json

import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.cli.main import main
from m2dino.data import write_fmc

from ..training.fake_data import make_samples

TASKS = ["fetal_head", "fetal_plane_cls", "thyroid_nodule_det", "IUGC"]


@pytest.fixture(scope="module")
def fmc_root_and_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("fmc")
    samples = [s for t in TASKS for s in make_samples(t, 3)]
    write_fmc(samples, root)
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS[:3], moe_blocks=(3,), num_experts=2, top_k=1,
                                decoder_features=8, image_size=32))
    model_dir = tmp_path_factory.mktemp("model")
    model.save_pretrained(model_dir)
    return root, model_dir


def test_evaluate_writes_a_scored_submission_and_reports_tasks_without_a_head(fmc_root_and_model, tmp_path, capsys):
    root, model_dir = fmc_root_and_model
    assert main(["evaluate", "--model", str(model_dir), "--data", str(root), "--out", str(tmp_path), "--quiet"]) == 0
    submission = tmp_path / "submission"
    classification = json.loads((submission / "classification_predictions.json").read_text())
    assert len(classification) == 3 and len(classification[0]["predicted_probs"]) == 6
    detection = json.loads((submission / "detection_predictions.json").read_text())
    assert len(detection) == 3 and len(detection[0]["bbox_pixels"]) == 4
    masks = sorted(submission.glob("Segmentation/**/*.png"))
    assert len(masks) == 3
    with Image.open(masks[0]) as mask:
        assert mask.mode == "L" and mask.size == (50, 40)  # original size (W, H), not the model's 32×32
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["segmentation"]) == {"fetal_head"} and metrics["segmentation"]["fetal_head"]["num_samples"] == 3
    assert metrics["classification"]["fetal_plane_cls"]["num_samples"] == 3
    # IUGC has ground truth but the model has no head for it: counted, never dropped
    assert metrics["summary"]["tasks_without_head"] == {"IUGC": 3}
    assert metrics["regression"]["IUGC"]["num_samples"] == 0
    assert (tmp_path / "metrics.md").is_file()


def test_evaluate_rejects_a_task_the_model_lacks(fmc_root_and_model, tmp_path, capsys):
    root, model_dir = fmc_root_and_model
    code = main(["evaluate", "--model", str(model_dir), "--data", str(root), "--out", str(tmp_path),
                 "--tasks", "IUGC", "--quiet"])
    assert code == 2
    assert "task 'IUGC' is not one of this model's 3 tasks" in capsys.readouterr().err


def test_evaluate_reports_the_head_circumference_error_in_mm_on_an_hc18_root(tmp_path):
    from m2dino.data.adapters import convert

    from ..data.layouts import write_hc18

    roots = convert("hc18", write_hc18(tmp_path / "hc18"), tmp_path / "fmc", progress=False,
                    fractions={"train": 0.0, "val": 1.0, "test": 0.0})
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head", "fetal_head_circumference"],
                                decoder_features=8, image_size=32))
    model.heads["fetal_head_circumference"].set_target_stats(150.0, 20.0)
    model.save_pretrained(tmp_path / "model")
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--data", str(roots["val"]),
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    submission = json.loads((tmp_path / "out/submission/measurement_predictions.json").read_text())
    assert submission and all(e["unit"] == "mm" for e in submission)
    metrics = json.loads((tmp_path / "out/metrics.json").read_text())
    hc = metrics["measurement"]["fetal_head_circumference"]
    truth = {r["image_path"]: r["value"] for r in _csv_rows(roots["val"]) if r["task_id"] == "fetal_head_circumference"}
    expected = sum(abs(e["predicted_value"] - float(truth[e["image_path"]])) for e in submission) / len(submission)
    assert hc["num_samples"] == len(truth) and hc["MAE"] == pytest.approx(expected)
    assert "| fetal_head_circumference |" in (tmp_path / "out/metrics.md").read_text()


def _csv_rows(root):
    import csv

    return [row for path in sorted((root / "csv_files").glob("*.csv")) for row in csv.DictReader(path.open())]
