"""`m2dino models` (table, JSON, one entry, the empty shipped zoo) and the commands that take a zoo name:
`m2dino predict --model NAME` and `m2dino evaluate --model NAME` offline, on a temporary zoo."""

import json
import subprocess
import sys

import huggingface_hub
import numpy as np
import pytest
from PIL import Image

from m2dino.cli.main import main
from m2dino.data import write_fmc
from m2dino.models.zoo import ZOO_ENV

from ..models.zoo_registry import BACKBONE, HUB_ID, HUB_MODEL, MODEL, TASKS, make_zoo
from ..training.fake_data import make_samples


@pytest.fixture
def registry(tmp_path, monkeypatch):
    zoo = make_zoo(tmp_path / "zoo", monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    return zoo


def test_an_empty_zoo_says_no_model_is_released_yet(monkeypatch, capsys, tmp_path):
    empty = tmp_path / "zoo.json"
    empty.write_text('{"format": 1, "entries": []}')
    monkeypatch.setenv(ZOO_ENV, str(empty))
    assert main(["models"]) == 0
    assert capsys.readouterr().out.startswith("no released models yet: the first releases are being trained")
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_shipped_zoo_lists_its_bundled_releases(monkeypatch, capsys):
    monkeypatch.delenv(ZOO_ENV, raising=False)
    assert main(["models", "--json"]) == 0
    model, backbone = json.loads(capsys.readouterr().out)
    assert model["name"] == "m2dino-mini-ccby" and model["where"] == "bundled" and model["license"] == "Apache-2.0"
    assert (backbone["name"], backbone["kind"], backbone["where"]) == ("m2dino-mini-us-ccby", "backbone", "bundled")


def test_the_table_lists_every_entry_and_where_it_is(registry, capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "backbone", "params", "input", "tasks", "training", "data",
                                "headline", "metrics", "license", "where"]
    assert set(lines[1]) <= {"-", " "}
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == [MODEL, BACKBONE, HUB_MODEL]
    assert "fetal_head, fetal_plane_cls" in rows[MODEL] and "fetal_head dice 0.5" in rows[MODEL]
    assert rows[MODEL].split()[-1] == "bundled" and rows[HUB_MODEL].split()[-1] == HUB_ID
    assert " 123.5k " in rows[MODEL] and " 2.5M " in rows[HUB_MODEL] and " 32x48 " in rows[HUB_MODEL]
    assert main(["models", "--kind", "backbone"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == [BACKBONE]
    assert main(["models", "--task", "IUGC"]) == 0
    assert capsys.readouterr().out.startswith("no zoo entry matches --task IUGC (m2dino models lists all 3)")


def test_json_output_has_every_field(registry, capsys):
    assert main(["models", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in entries] == [MODEL, BACKBONE, HUB_MODEL]
    first = entries[0]
    assert first["tasks"] == TASKS and first["where"] == "bundled" and first["input_size"] == [32, 32]
    assert first["metrics"] == [{"task": "fetal_head", "dataset": "synthetic", "split": "test", "metric": "dice",
                                 "value": 0.5}]
    assert first["training_data"] == [{"dataset": "synthetic", "license": "CC0-1.0"}]
    assert "root" not in first  # no machine path in the output


def test_one_entry_in_full_and_an_unknown_name(registry, capsys):
    assert main(["models", HUB_MODEL]) == 0
    text = capsys.readouterr().out
    assert f"where: {HUB_ID} at revision v1" in text and "fetal_head: dice = 0.5 (synthetic, test split)" in text
    assert f'M2DINO.from_pretrained("{HUB_MODEL}")' in text
    assert main(["models", "tiny-uz"]) == 2
    assert "'tiny-uz' is not in the model zoo; zoo entries: tiny-us, tiny-us-backbone, tiny-us-hub; did you mean " \
           "'tiny-us'?" in capsys.readouterr().err


def test_predict_with_a_zoo_name_offline(registry, tmp_path, capsys):
    scan = tmp_path / "scan.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 60), dtype=np.uint8)).save(scan)
    out = tmp_path / "out"
    assert main(["predict", "--model", MODEL, str(scan), "--all", "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    assert (out / "scan_overlay.png").is_file()
    record = json.loads((out / "scan.json").read_text())
    assert list(record["predictions"]) == TASKS and (record["height"], record["width"]) == (40, 60)
    assert main(["predict", "--model", "tiny-uss", str(scan), "--all", "--out", str(out), "--device", "cpu"]) == 2
    assert "did you mean 'tiny-us'?" in capsys.readouterr().err


def test_evaluate_with_a_zoo_name_offline(registry, tmp_path, capsys):
    root = tmp_path / "fmc"
    write_fmc([s for t in TASKS for s in make_samples(t, 2)], root)
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", MODEL, "--data", str(root), "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["segmentation"]["fetal_head"]["num_samples"] == 2
    assert metrics["classification"]["fetal_plane_cls"]["num_samples"] == 2


def test_models_runs_without_torch(registry):
    check = "import sys; from m2dino.cli.main import main; main(['models']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False" and MODEL in result.stdout
