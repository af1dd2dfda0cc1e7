"""`m2dino predict` end to end with a tiny saved model: overlays and JSON per image, in original pixels."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.cli.main import main
from m2dino.visualize import rle_decode

TASKS = ["fetal_head", "fetal_plane_cls", "fetal_head_det", "fetal_femur"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                decoder_features=8, image_size=32))
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def scans(tmp_path):
    """A folder with two scans of different sizes (one in a sub-folder) and one loose scan."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 60), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (50, 30, 3), dtype=np.uint8)).save(folder / "sub" / "b.jpg")
    loose = tmp_path / "c.png"
    Image.fromarray(rng.integers(0, 255, (36, 36), dtype=np.uint8)).save(loose)
    return folder, loose


def test_predict_writes_an_overlay_and_a_json_per_image(model_dir, scans, tmp_path, capsys):
    folder, loose = scans
    out = tmp_path / "out"
    code = main(["predict", "--model", str(model_dir), "--task", "fetal_head", "--task", "fetal_plane_cls,fetal_femur",
                 str(folder), str(loose), "--out", str(out), "--batch-size", "2", "--device", "cpu", "--quiet"])
    assert code == 0
    assert "wrote an overlay and a JSON for 3 images" in capsys.readouterr().out
    expected = {"scans/a": (40, 60), "scans/sub/b": (50, 30), "c": (36, 36)}
    for stem, (height, width) in expected.items():
        with Image.open(out / f"{stem}_overlay.png") as overlay:
            # three task tiles side by side at the image's own size, 4 px apart
            assert overlay.size == (3 * width + 2 * 4, height)
        record = json.loads((out / f"{stem}.json").read_text())
        assert (record["height"], record["width"]) == (height, width)
        assert list(record["predictions"]) == ["fetal_head", "fetal_plane_cls", "fetal_femur"]
        head = record["predictions"]["fetal_head"]
        assert rle_decode(head["classes"][0]["rle"]).shape == (height, width)  # the mask in original pixels
        probabilities = record["predictions"]["fetal_plane_cls"]["probabilities"]
        assert len(probabilities) == 6 and sum(probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert len(record["predictions"]["fetal_femur"]["points_xy"]) == 2


def test_predict_all_matches_the_python_api(model_dir, scans, tmp_path):
    _, loose = scans
    assert main(["predict", "--model", str(model_dir), "--all", str(loose), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--quiet"]) == 0
    record = json.loads((tmp_path / "o" / "c.json").read_text())
    assert list(record["predictions"]) == TASKS
    model = M2DINO.from_pretrained(model_dir)
    box = model.predict(str(loose), task="fetal_head_det")
    np.testing.assert_allclose(record["predictions"]["fetal_head_det"]["boxes"][0]["box_xyxy"], box.boxes[0],
                               rtol=1e-5, atol=1e-4)


def test_predict_reports_unreadable_images_after_writing_the_rest(model_dir, scans, tmp_path, capsys):
    folder, _ = scans
    (folder / "broken.png").write_bytes(b"not a png")
    code = main(["predict", "--model", str(model_dir), "--task", "fetal_head", str(folder), "--out",
                 str(tmp_path / "o"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "1 of 3 images could not be read" in err and "broken.png: not a readable image" in err
    assert (tmp_path / "o" / "scans" / "a_overlay.png").is_file()


@pytest.mark.parametrize("arguments, message", [
    (["--task", "IUGC"], "task 'IUGC' is not one of this model's 4 tasks"),
    ([], "the model has 4 tasks (fetal_head, fetal_plane_cls, fetal_head_det, fetal_femur): choose with --task"),
])
def test_predict_task_errors(model_dir, scans, tmp_path, capsys, arguments, message):
    _, loose = scans
    code = main(["predict", "--model", str(model_dir), *arguments, str(loose), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_predict_input_and_output_errors(model_dir, scans, tmp_path, capsys):
    _, loose = scans
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["predict", "--model", str(model_dir), "--all", str(loose), "--out", str(blocker / "o"), "--quiet"])
    assert code == 2
    assert f"output folder {blocker / 'o'} cannot be written" in capsys.readouterr().err
    code = main(["predict", "--model", str(model_dir), "--all", str(tmp_path / "nope.png"), "--out",
                 str(tmp_path / "o"), "--quiet"])
    assert code == 2
    assert f"image or folder not found: {tmp_path / 'nope.png'}" in capsys.readouterr().err
