"""`m2dino export` end to end with a tiny saved model, and its refusals: one line each, before any work."""

import json
import sys

import numpy as np
import pytest
import torch

from m2dino import M2DINO, M2DINOConfig
from m2dino.cli.main import main

TASKS = ["breast_2cls", "fetal_head_circumference"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                decoder_features=8, image_size=32))
    folder = tmp_path_factory.mktemp("models") / "tiny-model"
    model.save_pretrained(folder)
    return folder


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    return err


def test_export_all_writes_a_file_per_task_and_export_json(model_dir, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    out = tmp_path / "onnx"
    assert main(["export", "--model", str(model_dir), "--all", "--onnx", str(out)]) == 0
    assert "wrote 2 ONNX files (opset 17) and export.json" in capsys.readouterr().out
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["source"] == "tiny-model"  # the folder's name only: no machine path in the file
    assert list(manifest["tasks"]) == TASKS
    model = M2DINO.from_pretrained(model_dir)
    pixels = torch.randn(2, 3, 32, 32)
    for task, entry in manifest["tasks"].items():
        session = ort.InferenceSession(str(out / entry["file"]), providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {"pixel_values": pixels.numpy()})
        with torch.no_grad():
            output = model(pixels, task=task)
        want = output.logits if task == "breast_2cls" else output.value
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=0)


def test_export_named_tasks_with_commas_and_overwrite(model_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    out = tmp_path / "onnx"
    args = ["export", "--model", str(model_dir), "--onnx", str(out), "--opset", "18"]
    assert main([*args, "--task", "breast_2cls"]) == 0
    capsys.readouterr()
    assert main([*args, "--task", "fetal_head_circumference,breast_2cls"]) == 2
    assert "breast_2cls.onnx already exists (--overwrite" in _error(capsys)
    assert main([*args, "--task", "fetal_head_circumference,breast_2cls", "--task", "breast_2cls", "--overwrite"]) == 0
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["opset"] == 18 and list(manifest["tasks"]) == ["fetal_head_circumference", "breast_2cls"]


def test_neither_task_nor_all_is_one_line_before_loading(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "missing"), "--onnx", str(tmp_path / "out")]) == 2
    assert "choose what to export: --task TASK (repeatable) or --all" in _error(capsys)


def test_a_task_the_model_lacks_names_its_tasks(model_dir, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    assert main(["export", "--model", str(model_dir), "--task", "fetal_head", "--onnx", str(tmp_path / "out")]) == 2
    assert ("task 'fetal_head' is not one of this model's 2 tasks: breast_2cls, fetal_head_circumference"
            in _error(capsys))
    assert not (tmp_path / "out").exists()


def test_an_opset_onnx_cannot_write_is_one_line_before_loading(tmp_path, capsys):
    pytest.importorskip("onnx", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxruntime", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    code = main(["export", "--model", str(tmp_path / "missing"), "--all", "--onnx", str(tmp_path / "out"),
                 "--opset", "99"])
    assert code == 2
    assert "ONNX opset 99: the installed onnx" in _error(capsys)


def test_an_existing_file_is_refused_before_loading(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the export needs the onnx extra: pip install -e '.[onnx]'")
    (tmp_path / "export.json").write_text("{}")
    assert main(["export", "--model", str(tmp_path / "missing"), "--task", "breast_2cls", "--onnx", str(tmp_path)]) == 2
    assert "export.json already exists (--overwrite" in _error(capsys)


def test_without_the_onnx_extra_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails as if not installed
    assert main(["export", "--model", str(tmp_path / "missing"), "--all", "--onnx", str(tmp_path / "out")]) == 2
    assert "needs onnxruntime, not installed: pip install 'm2dino[onnx]'" in _error(capsys)
