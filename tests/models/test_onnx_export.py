"""ONNX export: onnxruntime against torch for every label kind (batch 1 and 3), an MoE and a dense model,
the README's torch-free snippet against `M2DINO.predict`, export.json, and the refused inputs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.models.onnx_export import (
    KIND_EXPORTS,
    MANIFEST_NAME,
    TaskGraph,
    check_opset,
    export_onnx,
    writable_opsets,
)
from m2dino.tasks.label_kinds import KINDS

onnx = pytest.importorskip("onnx", reason="the ONNX export tests need the onnx extra: pip install -e '.[onnx]'")
ort = pytest.importorskip("onnxruntime",
                          reason="the ONNX parity tests need onnxruntime (the onnx extra): pip install -e '.[onnx]'")

# One task of each label kind
KIND_TASKS = {"mask": "fetal_head", "class": "breast_2cls", "boxes": "thyroid_nodule_det", "keypoints": "IUGC",
              "scalar": "fetal_head_circumference"}
SIZE = (32, 48)
README = Path(__file__).resolve().parents[2] / "README.md"


def _tiny(seed: int = 0, **overrides) -> M2DINO:
    """A random tiny model whose outputs vary (weights perturbed: a fresh head's logits are nearly flat)."""
    torch.manual_seed(seed)
    kwargs = dict(backbone="test", tasks=list(KIND_TASKS.values()), moe_blocks=(2, 3), num_experts=4, top_k=2,
                  decoder_features=8, image_size=SIZE)
    model = M2DINO(M2DINOConfig(**{**kwargs, **overrides}))
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
        for head in model.heads.values():
            if hasattr(head, "set_target_stats"):
                head.set_target_stats(170.0, 40.0)  # a head circumference in mm, not 0 ± 1
        if "fetal_head" in model.heads:  # both classes in a mask, so that the argmax is tested
            logits = model.eval()(torch.rand(1, 3, *SIZE) * 4 - 2, task="fetal_head").logits
            model.heads["fetal_head"].classifier[-1].bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    return model.eval()


@pytest.fixture(scope="module")
def moe_model() -> M2DINO:
    return _tiny()


@pytest.fixture(scope="module")
def exported(moe_model, tmp_path_factory):
    """``exported(task)``: the folder holding that task's export (each task exported once per module)."""
    folders: dict[str, Path] = {}

    def get(task: str) -> Path:
        if task not in folders:
            folders[task] = tmp_path_factory.mktemp(task)
            export_onnx(moe_model, [task], folders[task])
        return folders[task]

    return get


def _torch_outputs(model: M2DINO, task: str, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The full (routed) model's typed output, by the names the ONNX file uses."""
    with torch.no_grad():
        out = model(pixels, task=task)
    kind = model.task_spec(task).label_kind.name
    if kind == "boxes":
        boxes, scores, labels = model.heads[task].decode(out, model.task_spec(task).max_boxes)
        return {"heatmap_logits": out.heatmap_logits, "size": out.size, "offset": out.offset, "boxes": boxes,
                "scores": scores, "labels": labels}
    if kind == "keypoints":
        return {"heatmap_logits": out.heatmap_logits, "keypoints": out.keypoints}
    return {"value": out.value} if kind == "scalar" else {"logits": out.logits}


def _run(folder: Path, task: str, pixels: torch.Tensor) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(folder / f"{task}.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"pixel_values": pixels.numpy()})))


def _assert_same_predictions(kind: str, got: dict[str, np.ndarray], want: dict[str, torch.Tensor]) -> None:
    """Raw tensors within 1e-4; what `predict` derives from them identical."""
    assert set(got) == set(want)
    for name, value in want.items():
        if name != "labels":
            np.testing.assert_allclose(got[name], value.numpy(), atol=1e-4, rtol=0, err_msg=name)
    if kind in ("mask", "class"):
        assert np.array_equal(got["logits"].argmax(1), want["logits"].argmax(1).numpy())
    if kind == "boxes":
        assert np.array_equal(got["labels"], want["labels"].numpy())
        heat = want["heatmap_logits"].flatten(1)
        assert np.array_equal(got["heatmap_logits"].reshape(len(heat), -1).argmax(1), heat.argmax(1).numpy())


@pytest.mark.parametrize("kind", list(KIND_TASKS))
def test_onnxruntime_matches_the_moe_model_at_batch_1_and_3(kind, moe_model, exported):
    task = KIND_TASKS[kind]
    folder = exported(task)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):  # traced at batch 2: both are other sizes of the dynamic axis
        pixels = torch.randn(batch, 3, *SIZE, generator=generator)
        got = _run(folder, task, pixels)
        _assert_same_predictions(kind, got, _torch_outputs(moe_model, task, pixels))
        assert all(len(v) == batch for v in got.values())


def test_the_exported_graph_is_the_dense_extraction(moe_model, exported):
    """The file holds no router: each MoE block became the task's 2 experts (extract_task)."""
    graph = onnx.load(str(exported("breast_2cls") / "breast_2cls.onnx"))
    assert not any(node.op_type in ("TopK", "NonZero") for node in graph.graph.node)
    extracted = moe_model.extract_task("breast_2cls")
    pixels = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(extracted(pixels, task="breast_2cls").logits,
                                   moe_model(pixels, task="breast_2cls").logits, atol=1e-6, rtol=0)


def test_export_json_describes_each_file(moe_model, exported):
    folder = exported("thyroid_nodule_det")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["format"] == "m2dino-onnx/1" and manifest["opset"] == 17 and manifest["source"] is None
    entry = manifest["tasks"]["thyroid_nodule_det"]
    assert entry["file"] == "thyroid_nodule_det.onnx" and entry["kind"] == "boxes"
    assert entry["class_names"] == ["nodule"] and entry["max_boxes"] == 1
    prep = moe_model.config.preprocessing
    assert entry["preprocessing"]["image_size"] == list(SIZE)
    assert (entry["preprocessing"]["resize_mode"], tuple(entry["preprocessing"]["mean"]),
            tuple(entry["preprocessing"]["std"])) == (prep.resize_mode, prep.mean, prep.std)
    session = ort.InferenceSession(str(folder / entry["file"]), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert (given.name, given.shape, entry["input"]["shape"]) == ("pixel_values", ["batch", 3, *SIZE],
                                                                  ["batch", 3, *SIZE])
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert {o["name"]: o["shape"] for o in entry["outputs"]} == outputs == {
        "heatmap_logits": ["batch", 1, 8, 12], "size": ["batch", 2, 8, 12], "offset": ["batch", 2, 8, 12],
        "boxes": ["batch", 1, 4], "scores": ["batch", 1], "labels": ["batch", 1]}
    assert entry["postprocess"] == KIND_EXPORTS["boxes"].postprocess
    assert entry["self_check"]["max_abs_diff"]["heatmap_logits"] < 1e-4


def test_every_label_kind_has_an_export_entry():
    assert set(KIND_EXPORTS) == set(KINDS)


def _readme_snippet() -> str:
    section = README.read_text().split("## Export to ONNX", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs_without_torch_and_matches_predict(moe_model, exported, tmp_path):
    """The README's code, run as written (torch made unimportable), gives `M2DINO.predict`'s mask."""
    (tmp_path / "onnx").symlink_to(exported("fetal_head"), target_is_directory=True)
    # larger than the 32×48 input, other aspect ratio: letterbox padding, and PIL enlarges the logits
    scan = np.random.default_rng(0).integers(0, 256, (75, 90, 3), dtype=np.uint8)
    Image.fromarray(scan).save(tmp_path / "scan.png")
    script = "import sys\nsys.modules['torch'] = None\n" + _readme_snippet() + "\nnp.save('mask.npy', mask)\n"
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, capture_output=True, text=True)
    mask = np.load(tmp_path / "mask.npy")
    expected = moe_model.predict(tmp_path / "scan.png", task="fetal_head").mask
    assert mask.shape == expected.shape == (75, 90)
    assert 0 < expected.mean() < 1, "a mask of one class would not test the argmax"
    assert (mask != expected).sum() <= 2  # float rounding could flip a pixel where two logits tie


def test_a_dense_model_exports_too(tmp_path):
    model = _tiny(seed=3, tasks=["fetal_head_circumference"], moe_blocks=())
    export_onnx(model, ["fetal_head_circumference"], tmp_path)
    pixels = torch.randn(3, 3, *SIZE)
    _assert_same_predictions("scalar", _run(tmp_path, "fetal_head_circumference", pixels),
                             _torch_outputs(model, "fetal_head_circumference", pixels))


def test_graph_wrapper_returns_the_kind_outputs(moe_model):
    outputs = TaskGraph(moe_model, "IUGC")(torch.zeros(1, 3, *SIZE))
    assert [tuple(t.shape) for t in outputs] == [(1, 3, 8, 12), (1, 3, 2)]


# ------------------------------------------------------------------------------- refused before work
def test_a_task_the_model_lacks_names_the_models_tasks(moe_model, tmp_path):
    for task in ("fetal_femur", "no_such_task"):
        with pytest.raises(ValueError, match="not one of this model's 5 tasks: fetal_head, breast_2cls"):
            export_onnx(moe_model, ["breast_2cls", task], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_opset_outside_what_is_installed_is_one_line(moe_model, tmp_path):
    low, high = writable_opsets()
    assert low == 14 and high >= 17
    with pytest.raises(ValueError, match=r"opset 13: .*needs opset 14 or later"):
        check_opset(13)
    with pytest.raises(ValueError, match=rf"opset 99: the installed onnx {onnx.__version__} writes opsets up to"):
        export_onnx(moe_model, ["breast_2cls"], tmp_path / "out", opset=99)
    if high < onnx.defs.onnx_opset_version():
        with pytest.raises(ValueError, match=rf"opset {high + 1}: torch .*TorchScript-based exporter writes"):
            check_opset(high + 1)
    assert not (tmp_path / "out").exists()


def test_an_existing_file_needs_overwrite(moe_model, tmp_path):
    (tmp_path / "breast_2cls.onnx").write_text("keep me")
    with pytest.raises(ValueError, match=r"breast_2cls.onnx already exists \(--overwrite"):
        export_onnx(moe_model, ["breast_2cls"], tmp_path)
    assert (tmp_path / "breast_2cls.onnx").read_text() == "keep me"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file; the ONNX output is a folder"):
        export_onnx(moe_model, ["breast_2cls"], tmp_path / "file")
    export_onnx(moe_model, ["breast_2cls"], tmp_path, overwrite=True)
    assert onnx.load(str(tmp_path / "breast_2cls.onnx")).graph.input[0].name == "pixel_values"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["breast_2cls.onnx", "export.json", "file"]


def test_a_token_routed_moe_is_refused(tmp_path):
    model = _tiny(tasks=["breast_2cls"], routing="task+token")
    with pytest.raises(ValueError, match="routes each token"):
        export_onnx(model, ["breast_2cls"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_without_onnxruntime_the_error_says_what_to_install(moe_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails as if not installed
    with pytest.raises(ImportError, match=r"needs onnxruntime, not installed: pip install 'm2dino\[onnx\]'"):
        export_onnx(moe_model, ["breast_2cls"], tmp_path / "out")
