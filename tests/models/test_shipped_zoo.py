"""The shipped zoo: its first release is bundled in the package and works offline with no training:
the registry lists it, it loads by name, predicts the example scans, and its card, release.json and
registry entry state the same numbers, measured by the release run itself."""

import json

import numpy as np
import pytest
import torch
import yaml

import m2dino
from m2dino import M2DINO
from m2dino.models import zoo
from m2dino.visualize.examples import example_images

NAME = "m2dino-mini-ccby"


@pytest.fixture(scope="module")
def entry():
    return zoo.get_entry(NAME)


def test_the_first_release_is_listed_and_bundled_small(entry):
    assert NAME in m2dino.list_pretrained()
    folder = entry.bundled_folder
    assert entry.where == "bundled" and (folder / "model.safetensors").is_file()
    bundled = sum(p.stat().st_size for p in folder.parent.rglob("*") if p.is_file())
    assert bundled <= 25 * 2**20, f"bundled files take {bundled / 2**20:.1f} MB; the zoo allows 25 MB in all"
    assert entry.license == "Apache-2.0" and {d["license"] for d in entry.training_data} == {"CC-BY-4.0"}


def test_it_loads_by_name_offline_and_segments_a_scan(monkeypatch, entry):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = M2DINO.from_pretrained(NAME)
    assert model.task_ids == list(entry.tasks)
    head_scan, plane_scan = example_images()  # synthetic: no real scan ships with the package
    mask = model.predict(head_scan, task="fetal_head").mask
    assert mask.shape == (360, 480)
    head = mask.mean()
    assert 0.05 < head < 0.6, f"fetal head covers {head:.1%} of the scan"  # a head, not an empty or full mask
    plane = model.predict(plane_scan, task="fetal_plane_cls")
    assert np.isclose(plane.probs.sum(), 1.0)


def test_card_release_json_and_registry_state_the_same_numbers(entry):
    folder = entry.bundled_folder
    record = json.loads((folder / "release.json").read_text())
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    card_values = {(r["task"]["name"], r["dataset"]["name"], m["type"]): m["value"]
                   for block in front["model-index"] for r in block["results"] for m in r["metrics"]}
    released = {(m["task"], m["dataset"], m["metric"]): m["value"] for m in record["metrics"]}
    registered = {(m["task"], m["dataset"], m["metric"]): m["value"] for m in entry.metrics}
    assert registered == released
    assert sorted(card_values.values()) == sorted(released.values())
    assert {task for task, _, _ in released} == set(entry.tasks)


BACKBONE = "m2dino-mini-us-ccby"


def test_the_pretrained_backbone_is_the_second_entry_and_loads_by_name_offline(monkeypatch):
    """The zoo's second entry: the self-supervised mini backbone alone, for users' own heads."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = zoo.get_entry(BACKBONE)
    assert m2dino.list_pretrained("backbone") == [BACKBONE] and len(m2dino.list_pretrained()) >= 2
    assert entry.kind == "backbone" and entry.where == "bundled" and entry.tasks == ()
    from safetensors.torch import load_file

    from m2dino import M2DINOConfig

    model = M2DINO(M2DINOConfig(backbone="mini", tasks=["fetal_head"], image_size=(128, 128), moe_blocks=()),
                   backbone_weights=BACKBONE)
    stored = load_file(str(entry.bundled_folder / "model.safetensors"))
    state = model.backbone.state_dict()
    assert all(torch.equal(state[key], value.float()) for key, value in stored.items() if key in state)
    assert sum(key in state for key in stored) >= len(stored) - 2  # timm layout: at most the q/v bias split


def test_the_backbone_card_release_json_and_registry_state_the_same_probes():
    entry = zoo.get_entry(BACKBONE)
    folder = entry.bundled_folder
    record = json.loads((folder / "release.json").read_text())
    probes = json.loads((folder / "probe.json").read_text())
    mine = [p["accuracy"] for p in probes if p["init"] == "this backbone"]
    assert np.isclose(np.mean(mine), next(m["value"] for m in entry.metrics if m["metric"].startswith("accuracy")))
    assert [m["value"] for m in entry.metrics] == [m["value"] for m in record["metrics"]]
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---")[1])
    assert sorted(m["value"] for block in front["model-index"] for r in block["results"] for m in r["metrics"]) == \
        sorted(m["value"] for m in record["metrics"])


def test_m2dino_predict_takes_the_zoo_name_offline(monkeypatch, tmp_path, capsys):
    """`m2dino predict --model m2dino-mini-ccby SCAN --out DIR` on a fresh install: no training, no network."""
    from m2dino.cli.main import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    head_scan, _ = example_images()
    out = tmp_path / "out"
    assert main(["predict", "--model", NAME, "--all", str(head_scan), "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    record = json.loads((out / f"{head_scan.stem}.json").read_text())
    assert list(record["predictions"]) == list(zoo.get_entry(NAME).tasks)
    assert (out / f"{head_scan.stem}_overlay.png").is_file()
