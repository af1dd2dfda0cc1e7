"""`m2dino release` end to end on the synthetic suite (tiny model, 3 steps): the folder, its card's
model-index, and the card's numbers against a separate `m2dino evaluate` run (exact equality)."""

from __future__ import annotations

import json

import pytest
import yaml

from m2dino.cli.main import main

from .conftest import TASKS, release_values, write_release_yaml


@pytest.fixture(scope="module")
def released(synthetic_roots, tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    config = write_release_yaml(folder / "release.yaml", release_values(synthetic_roots, folder))
    assert main(["release", str(config), "--set", "weights_dtype=bf16", "--device", "cpu", "--quiet"]) == 0
    return folder


@pytest.mark.slow
def test_release_writes_the_hub_ready_folder(released):
    release = released / "release"
    for name in ("config.json", "model.safetensors", "README.md", "release.json", "release.yaml", "loss_curves.png",
                 "evaluation/synthetic/metrics.json", "evaluation/synthetic/constant_metrics.json",
                 "examples/synthetic_fetal_head.png", "examples/synthetic_fetal_plane_cls.png"):
        assert (release / name).is_file(), name
    from safetensors import safe_open

    with safe_open(str(release / "model.safetensors"), framework="pt") as weights:
        dtypes = {str(weights.get_slice(k).get_dtype()) for k in weights.keys()}
    assert "BF16" in dtypes and "F32" not in dtypes  # --set weights_dtype=bf16 reached the file
    from m2dino.models import M2DINO

    model = M2DINO.from_pretrained(release)  # bf16 weights load into the fp32 model, upcast
    assert next(model.parameters()).dtype.is_floating_point and set(model.task_ids) == set(TASKS)
    record = json.loads((release / "release.json").read_text())
    assert record["name"] == "m2dino-test-synthetic" and record["license"] == "Apache-2.0"
    assert record["tasks"] == TASKS and record["weights_dtype"] == "bf16"
    assert "model.safetensors" in record["files"] and record["commit"]
    resolved = yaml.safe_load((release / "release.yaml").read_text())
    assert resolved["weights_dtype"] == "bf16" and resolved["run"]["train"]["steps"] == 3


@pytest.mark.slow
def test_card_model_index_has_one_entry_per_task(released):
    card = (released / "release" / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    results = front["model-index"][0]["results"]
    assert sorted(r["task"]["name"] for r in results) == sorted(TASKS)
    for result in results:
        assert result["dataset"] == {"name": "synthetic", "type": "synthetic", "split": "test"}
        assert result["task"]["type"] in {"image-segmentation", "image-classification", "object-detection",
                                          "keypoint-detection"}
        assert all(isinstance(m["value"], float) and m["type"] for m in result["metrics"])
    assert front["license"] == "apache-2.0" and front["library_name"] == "m2dino"
    for text in ("constant predictor", "Intended use: research; not for clinical use", "Not a medical device",
                 "## Training data", "CC0-1.0", "m2dino release", "m2dino commit", "loss_curves.png",
                 "```yaml", "m2dino evaluate --model MODEL"):
        assert text in card, text


@pytest.mark.slow
def test_card_numbers_equal_a_separate_evaluate_run(released, synthetic_roots):
    out = released / "evaluate"
    assert main(["evaluate", "--model", str(released / "release"), "--data", str(synthetic_roots["test"]),
                 "--tasks", *TASKS, "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    separate = json.loads((out / "metrics.json").read_text())
    card = yaml.safe_load((released / "release" / "README.md").read_text().split("---\n")[1])
    sections = {"image-segmentation": "segmentation", "image-classification": "classification",
                "object-detection": "detection", "keypoint-detection": "regression"}
    compared = 0
    for result in card["model-index"][0]["results"]:
        task, section = result["task"]["name"], sections[result["task"]["type"]]
        for metric in result["metrics"]:
            assert metric["value"] == separate[section][task][metric["type"]], (task, metric)  # exact
            compared += 1
    assert compared >= len(TASKS)
    record = json.loads((released / "release" / "release.json").read_text())
    stored = json.loads((released / "release" / "evaluation" / "synthetic" / "metrics.json").read_text())
    for entry in record["metrics"]:
        section = next(s for s in stored if isinstance(stored[s], dict) and entry["task"] in stored[s])
        assert entry["value"] == separate[section][entry["task"]][entry["metric"]]


@pytest.mark.slow
def test_zoo_entry_is_a_valid_registry_entry(released, tmp_path):
    from m2dino.release import zoo_entry

    entry = zoo_entry(released / "release", hub_id="org/m2dino-test-synthetic")
    assert entry["name"] == "m2dino-test-synthetic" and entry["tasks"] == TASKS
    assert {m["task"] for m in entry["metrics"]} == set(TASKS)
    zoo_module = pytest.importorskip("m2dino.models.zoo")
    registry = tmp_path / "zoo.json"
    registry.write_text(json.dumps({"format": 1, "entries": [entry]}))
    loaded = zoo_module.load_zoo(registry)
    assert loaded["m2dino-test-synthetic"].hub_id == "org/m2dino-test-synthetic"


@pytest.mark.slow
def test_a_release_continues_its_pretraining_from_the_folders_checkpoints(synthetic_roots, tmp_path):
    """pretrain.output_dir already holds a finished pretraining (made in parts with `m2dino pretrain`): the
    release exports it again and trains on it instead of starting the pretraining over."""
    pretrain = {"output_dir": str(tmp_path / "pretrain"), "backbone": "test", "steps": 2, "batch_size": 3,
                "warmup_steps": 1, "log_every": 1, "threads": 1, "data": [f"fmc:{synthetic_roots['train']}"],
                "crops": {"global_size": 32, "local_size": 16, "local_crops": 2},
                "loss": {"prototypes": 32, "ibot_prototypes": 16, "head_hidden": 32, "head_bottleneck": 16}}
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    assert main(["pretrain", str(tmp_path / "pretrain.yaml"), "--no-progress"]) == 0
    log = (tmp_path / "pretrain" / "log.jsonl").read_text()
    values = release_values(synthetic_roots, tmp_path, pretrain=pretrain)
    values["run"]["model"].pop("backbone")
    values["run"]["train"]["steps"] = 1
    assert main(["release", str(write_release_yaml(tmp_path / "release.yaml", values)), "--quiet"]) == 0
    assert (tmp_path / "pretrain" / "log.jsonl").read_text() == log  # not one more pretraining step
    run = yaml.safe_load((tmp_path / "run" / "run.yaml").read_text())
    assert run["model"]["pretrained"] == str(tmp_path / "pretrain" / "backbone.safetensors")
