import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from m2dino import M2DINO, TaskSpec
from m2dino.tasks import get_task

from .helpers import FOUR_TYPES, assert_outputs_equal, tiny_config, tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _outputs(model, x):
    with torch.no_grad():
        return {t: model(x, task=t) for t in model.task_ids}


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(seed=3)
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = M2DINO.from_pretrained(tmp_path / "m")
    x = torch.randn(2, 3, 32, 48)
    for task, out in _outputs(model, x).items():
        assert_outputs_equal(loaded(x, task=task), out, atol=0)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["model_type"] == "m2dino" and config["moe_blocks"] == [2, 3]
    assert config["task_specs"]["IUGC"]["num_classes"] == 3


def test_loading_a_subset_of_tasks(tmp_path):
    model = tiny_model(seed=4)
    model.save_pretrained(tmp_path)
    subset = M2DINO.from_pretrained(tmp_path, tasks=["IUGC", "fetal_head"])
    assert subset.task_ids == ["IUGC", "fetal_head"] and set(subset.heads) == {"IUGC", "fetal_head"}
    x = torch.randn(1, 3, 32, 48)
    full = _outputs(model, x)
    for task in ("IUGC", "fetal_head"):
        with torch.no_grad():
            assert_outputs_equal(subset(x, task=task), full[task], atol=1e-6)


def test_extracted_model_round_trips(tmp_path):
    dense = tiny_model(seed=5).extract_task("fetal_plane_cls")
    dense.save_pretrained(tmp_path)
    loaded = M2DINO.from_pretrained(tmp_path)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        assert_outputs_equal(loaded(x, task="fetal_plane_cls"), dense(x, task="fetal_plane_cls"), atol=0)


def _fill_hub_cache(cache, repo_id, folder):
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        shutil.copy(file, snapshot / file.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def test_from_a_hub_id_in_the_offline_cache(tmp_path, monkeypatch):
    model = tiny_model(seed=6)
    model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    _fill_hub_cache(cache, "m2dino/tiny-test", tmp_path / "saved")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    x = torch.randn(1, 3, 32, 48)
    for revision in (None, COMMIT):
        loaded = M2DINO.from_pretrained("m2dino/tiny-test", revision=revision, cache_dir=cache)
        with torch.no_grad():
            assert_outputs_equal(loaded(x, task="IUGC"), model(x, task="IUGC"), atol=0)
    with pytest.raises(Exception, match="(?i)offline|cannot find|not found|LocalEntryNotFound"):
        M2DINO.from_pretrained("m2dino/not-cached", cache_dir=cache)


def test_push_to_hub_uploads_config_weights_and_card(tmp_path, monkeypatch):
    uploaded = {}

    class FakeApi:
        def __init__(self, token=None):
            uploaded["token"] = token

        def create_repo(self, repo_id, private=False, exist_ok=False):
            uploaded["repo"] = (repo_id, private, exist_ok)

        def upload_folder(self, repo_id, folder_path, commit_message, revision=None):
            uploaded["files"] = {p.name: p.read_bytes() for p in __import__("pathlib").Path(folder_path).iterdir()}
            return "https://huggingface.co/org/name/commit/abc"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    url = tiny_model().push_to_hub("org/name", private=True, token="t")
    assert url.endswith("/commit/abc") and uploaded["repo"] == ("org/name", True, True)
    assert set(uploaded["files"]) == {"README.md", "config.json", "model.safetensors"}
    card = uploaded["files"]["README.md"].decode()
    assert "library_name: m2dino" in card and "`thyroid_nodule_det` | detection" in card
    assert "Not a medical device" in card and "randomly initialised" in card


def test_a_checkpoint_from_another_config_is_a_clear_error(tmp_path):
    tiny_model(num_experts=4).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["num_experts"] = 2
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="config.json: num_experts=2 but .*model.safetensors holds 4 experts in "
                                         "block 2"):
        M2DINO.from_pretrained(tmp_path)
    tiny_model(decoder_features=16).save_pretrained(tmp_path / "b")
    state = load_file(str(tmp_path / "b" / "model.safetensors"))
    state["heads.IUGC.heatmap.2.weight"] = torch.zeros(5, 16, 1, 1)
    save_file(state, str(tmp_path / "b" / "model.safetensors"))
    with pytest.raises(ValueError, match="heads.IUGC.heatmap.2.weight: checkpoint \\(5, 16, 1, 1\\) "
                                         "vs model \\(3, 16, 1, 1\\)"):
        M2DINO.from_pretrained(tmp_path / "b")


def test_pickles_are_never_loaded(tmp_path):
    tiny_model().config.save(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(FileNotFoundError, match="pickle checkpoints are not loaded"):
        M2DINO.from_pretrained(tmp_path)


def test_a_users_own_task_travels_with_the_checkpoint(tmp_path):
    spec = TaskSpec(id="my_kidney_seg", type="segmentation", num_classes=3, class_names=("bg", "cortex", "pelvis"),
                    organ="kidney", group="abdominal_other")
    model = tiny_model().add_task(spec)
    model.save_pretrained(tmp_path)
    loaded = M2DINO.from_pretrained(tmp_path)  # the registry never heard of the task
    assert loaded.task_spec("my_kidney_seg") == spec
    with pytest.raises(KeyError, match="unknown task id 'my_kidney_seg'"):
        get_task("my_kidney_seg")
    with torch.no_grad():
        assert loaded(torch.zeros(1, 3, 32, 48), task="my_kidney_seg").logits.shape == (1, 3, 32, 48)


def test_a_config_from_something_else_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 3}))
    with pytest.raises(ValueError, match="model_type 'vit' is not an M2DINO config"):
        M2DINO.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        M2DINO.from_pretrained(str(tmp_path / "missing" / "deep" / "x"))
    assert tiny_config().tasks == FOUR_TYPES


def test_a_truncated_checkpoint_and_a_bare_name_are_named(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"model.safetensors: not a readable safetensors file .*may be truncated"):
        M2DINO.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="my_model: no such model folder .*Hub id of the form 'org/name'"):
        M2DINO.from_pretrained("my_model")
