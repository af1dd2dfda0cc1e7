"""The model zoo's registry: listing, name resolution (bundled offline, Hub fallback, precedence, unknown
names) for models and backbones, and validation of the registry file. No network: downloads are patched."""

import json
import shutil

import huggingface_hub
import pytest
import torch

import m2dino
from m2dino import M2DINO
from m2dino.models import pretrained_weights, zoo
from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.pretrained_weights import load_backbone_weights

from .zoo_registry import (
    BACKBONE,
    HUB_ID,
    HUB_MODEL,
    HUB_REVISION,
    MODEL,
    entry,
    make_zoo,
    tiny_zoo_model,
    write_registry,
)

MISSING = object()  # a field left out of the entry


@pytest.fixture
def registry(tmp_path, monkeypatch):
    return make_zoo(tmp_path / "zoo", monkeypatch)


@pytest.fixture
def no_network(monkeypatch):
    """Offline, and any download attempt fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args} {kwargs}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", refuse)
    monkeypatch.setattr(pretrained_weights, "hf_hub_download", refuse)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_the_shipped_registry_loads_and_lists_its_first_release(monkeypatch):
    monkeypatch.delenv(zoo.ZOO_ENV, raising=False)
    assert zoo.zoo_file() == zoo.SHIPPED_ZOO
    assert list(zoo.load_zoo()) == ["m2dino-mini-ccby", "m2dino-mini-us-ccby"]
    assert m2dino.list_pretrained(kind="model") == ["m2dino-mini-ccby"]
    assert m2dino.list_pretrained(kind="backbone") == ["m2dino-mini-us-ccby"]
    with pytest.raises(FileNotFoundError, match="my_model: no such model folder .*zoo models: m2dino-mini-ccby"):
        M2DINO.from_pretrained("my_model")


def test_an_empty_registry_says_no_model_is_released_yet(monkeypatch, tmp_path):
    empty = tmp_path / "zoo.json"
    empty.write_text('{"format": 1, "entries": []}')
    monkeypatch.setenv(zoo.ZOO_ENV, str(empty))
    assert zoo.load_zoo() == {} and m2dino.list_pretrained() == []
    with pytest.raises(FileNotFoundError, match="my_model: no such model folder .*no model is released in the zoo "
                                                "yet"):
        M2DINO.from_pretrained("my_model")


def test_list_pretrained_by_kind_and_task(registry):
    assert m2dino.list_pretrained() == [MODEL, BACKBONE, HUB_MODEL]
    assert m2dino.list_pretrained(kind="model") == [MODEL, HUB_MODEL]
    assert m2dino.list_pretrained(kind="backbone") == [BACKBONE]
    assert m2dino.list_pretrained(task="fetal_plane_cls") == [MODEL, HUB_MODEL]
    assert m2dino.list_pretrained(task="thyroid_nodule_det") == []
    with pytest.raises(ValueError, match="kind='dense': expected one of model, backbone"):
        m2dino.list_pretrained(kind="dense")
    got = zoo.get_entry(HUB_MODEL)
    assert (got.hub_id, got.revision, got.input_size, got.where) == (HUB_ID, HUB_REVISION, (32, 48), HUB_ID)
    assert zoo.get_entry(MODEL).where == "bundled"


def test_from_pretrained_loads_the_bundled_copy_offline(registry, no_network):
    loaded = M2DINO.from_pretrained(MODEL)
    assert loaded.task_ids == ["fetal_head", "fetal_plane_cls"]
    assert_same_state(loaded, registry["model"])
    assert zoo.resolve(MODEL).source == registry["path"].parent / "bundled" / MODEL


def test_a_zoo_name_without_a_bundled_copy_downloads_its_hub_id(registry, tmp_path, monkeypatch):
    served = tmp_path / "snapshot"
    shutil.copytree(registry["path"].parent / "bundled" / MODEL, served)
    calls = []

    def snapshot_download(repo_id, revision=None, **kwargs):
        calls.append((repo_id, revision))
        return str(served)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert_same_state(M2DINO.from_pretrained(HUB_MODEL), registry["model"])
    assert calls == [(HUB_ID, HUB_REVISION)]  # the entry's own revision: the one its card's numbers belong to
    M2DINO.from_pretrained(HUB_MODEL, revision="main")
    assert calls[-1] == (HUB_ID, "main")
    # a revision asked of a bundled entry means its Hub copy: the bundled one is a single fixed revision
    M2DINO.from_pretrained(MODEL, revision="v2")
    assert calls[-1] == ("m2dino-test/tiny-us", "v2")
    # a bundled copy missing from this install (e.g. a slimmed wheel) falls back to the Hub id
    shutil.rmtree(registry["path"].parent / "bundled" / MODEL)
    assert zoo.get_entry(MODEL).where == "m2dino-test/tiny-us"
    M2DINO.from_pretrained(MODEL)
    assert calls[-1] == ("m2dino-test/tiny-us", None)


def test_an_unknown_name_lists_the_choices_and_the_closest(registry, no_network):
    with pytest.raises(FileNotFoundError, match=r"tiny-uss: no such model folder \(expected .* a Hub id of the form "
                                                r"'org/name' or a zoo model name\); zoo models: tiny-us, tiny-us-hub; "
                                                r"did you mean 'tiny-us'\?"):
        M2DINO.from_pretrained("tiny-uss")
    with pytest.raises(FileNotFoundError, match="zoo backbones: tiny-us-backbone; did you mean 'tiny-us-backbone'"):
        load_backbone_weights(DINOv3Backbone("test"), "tiny-us-bakbone")
    with pytest.raises(KeyError, match="'zebra' is not in the model zoo; zoo entries: tiny-us, tiny-us-backbone"):
        zoo.get_entry("zebra")
    # a Hub id (with '/') is not a zoo name: it goes to the Hub as before, unresolved
    assert zoo.resolve("org/tiny-us") == ("org/tiny-us", None, None)


def test_an_entry_of_the_other_kind_is_named(registry, no_network):
    with pytest.raises(ValueError, match="zoo entry 'tiny-us-backbone' is a backbone, not a model: use it as "
                                         "--pretrained tiny-us-backbone in a recipe"):
        M2DINO.from_pretrained(BACKBONE)
    with pytest.raises(ValueError, match="zoo entry 'tiny-us' is a model, not a backbone"):
        load_backbone_weights(DINOv3Backbone("test"), MODEL)


def test_a_local_folder_wins_over_a_zoo_name_of_the_same_spelling(registry, tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)
    tiny_zoo_model(seed=3, tasks=["fetal_femur"]).save_pretrained(tmp_path / MODEL)
    assert M2DINO.from_pretrained(MODEL).task_ids == ["fetal_femur"]
    assert zoo.find_entry(MODEL) is None
    # a Path is always a path, never a zoo name
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        M2DINO.from_pretrained(tmp_path / "elsewhere" / HUB_MODEL)


def test_a_backbone_entry_loads_as_pretrained_weights(registry, no_network):
    from m2dino.recipes.building import backbone_for, build_model
    from m2dino.recipes.run_config import ModelSettings

    backbone = DINOv3Backbone("test")
    report = load_backbone_weights(backbone, BACKBONE)
    assert report["files"] == [str(registry["path"].parent / "bundled" / BACKBONE / "backbone.safetensors")]
    assert_same_state(backbone, registry["backbone"])
    # the recipes' --pretrained NAME: the entry names the backbone size, the weights load before MoE upcycling
    assert backbone_for(None, BACKBONE) == ("test", {})
    model = build_model(ModelSettings(pretrained=BACKBONE, moe_blocks=(), image_size=32, decoder_features=8),
                        ["fetal_head"], seed=0)
    assert_same_state(model.backbone, registry["backbone"])
    assert model.config.backbone_weights == BACKBONE  # provenance: the name, not a machine path


def test_a_backbone_entry_without_a_bundled_copy_downloads_its_hub_id(tmp_path, monkeypatch):
    source = DINOv3Backbone("test")
    folder = tmp_path / "hub"
    folder.mkdir()
    from safetensors.torch import save_file

    save_file(source.state_dict(), str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"architecture": "vit_test_patch16_dinov3"}))
    path = write_registry(tmp_path / "zoo", [entry("us-dino", kind="backbone", hub_id="org/us-dino", bundled=None)])
    monkeypatch.setenv(zoo.ZOO_ENV, str(path))
    calls = []

    def download(repo_id, filename, revision=None, **kwargs):
        calls.append((repo_id, filename, revision))
        return str(folder / filename)

    monkeypatch.setattr(pretrained_weights, "hf_hub_download", download)
    backbone = DINOv3Backbone("test")
    load_backbone_weights(backbone, "us-dino")
    assert calls == [("org/us-dino", "config.json", None), ("org/us-dino", "model.safetensors", None)]
    assert_same_state(backbone, source)


@pytest.mark.parametrize("change, message", [
    ({"checkpoint": "x"}, r"entry 0 \(bad\): unknown field 'checkpoint'"),
    ({"license": MISSING}, r"entry 0 \(bad\): field 'license' is missing"),
    ({"license": " "}, r"entry 0 \(bad\): field 'license': expected a non-empty string"),
    ({"bundled": "../outside"}, r"entry 0 \(bad\): field 'bundled': expected a folder inside the package"),
    ({"bundled": "/abs/folder"}, r"entry 0 \(bad\): field 'bundled': expected a folder path relative"),
    ({"bundled": None}, r"entry 0 \(bad\): field 'hub_id': expected a Hub id when 'bundled' is null"),
    ({"hub_id": "no-slash"}, r"entry 0 \(bad\): field 'hub_id': expected a Hub id of the form 'org/name'"),
    ({"kind": "head"}, r"entry 0 \(bad\): field 'kind': expected 'model' or 'backbone'"),
    ({"params": 0}, r"entry 0 \(bad\): field 'params'=0: expected a whole number >= 1"),
    ({"input_size": [32]}, r"entry 0 \(bad\): field 'input_size': expected a side in pixels or \[height, width\]"),
    ({"tasks": []}, r"entry 0 \(bad\): field 'tasks': expected a list of task ids \(at least one for a model\)"),
    ({"training_data": [{"dataset": "HC18"}]}, r"field 'training_data'\[0\]: missing key 'license'"),
    ({"metrics": [{"task": "fetal_head", "dataset": "d", "split": "test", "metric": "dice", "value": "high"}]},
     r"field 'metrics'\[0\].value='high': expected a finite number"),
    ({"metrics": [{"task": "IUGC", "dataset": "d", "split": "test", "metric": "mre", "value": 1.0}]},
     r"field 'metrics'\[0\].task: 'IUGC' is not in the entry's tasks"),
    ({"name": "org/bad"}, r"entry 0: field 'name': expected letters, digits, '.', '_' or '-' \(no '/'\)"),
])
def test_the_registry_is_validated_on_load(tmp_path, monkeypatch, change, message):
    raw = {key: value for key, value in {**entry("bad"), **change}.items() if value is not MISSING}
    monkeypatch.setenv(zoo.ZOO_ENV, str(write_registry(tmp_path, [raw])))
    with pytest.raises(ValueError, match=message):
        m2dino.list_pretrained()


def test_duplicate_names_and_the_file_layout_are_validated(tmp_path, monkeypatch):
    path = write_registry(tmp_path, [entry("twin"), entry("twin")])
    with pytest.raises(ValueError, match=r"entry 1 \(twin\): field 'name': already used"):
        zoo.load_zoo(path)
    path.write_text(json.dumps({"format": 2, "entries": []}))
    with pytest.raises(ValueError, match="format 2; this m2dino reads format 1"):
        zoo.load_zoo(path)
    path.write_text(json.dumps([]))
    with pytest.raises(ValueError, match="exactly 'format' and 'entries'"):
        zoo.load_zoo(path)
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "absent.json"))
    with pytest.raises(FileNotFoundError, match=f"absent.json: no such zoo registry \\(check {zoo.ZOO_ENV}\\)"):
        m2dino.list_pretrained()
