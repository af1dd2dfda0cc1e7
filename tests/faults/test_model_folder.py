"""A downloaded model folder is input from a stranger (issue 27): its config.json's sizes are bounded and
checked against the weights' shapes before anything is allocated, its backbone_overrides are an
allow-list of architecture settings, no path inside it is ever read, and a malformed task spec is one
line naming the task and the field. Memory cases assert the refusal comes before allocation."""

import json
import re

import pytest
import torch

from m2dino import M2DINO, M2DINOConfig
from m2dino.limits import LimitError
from m2dino.models import moe
from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.config_fit import ConfigMismatch
from m2dino.tasks import TaskSpec, get_task


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head"], moe_blocks=(3,), num_experts=2, top_k=1,
                        decoder_features=8, image_size=32)).save_pretrained(folder)
    return folder, json.loads((folder / "config.json").read_text())


def folder_with(saved, tmp_path, **changes):
    """The saved model with config.json edited (weights shared by a symlink)."""
    folder, config = saved
    (tmp_path / "model.safetensors").symlink_to(folder / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps({**config, **changes}))
    return tmp_path


def forbidden(*args, **kwargs):
    raise AssertionError("allocated (or read) before the config was refused")


@pytest.fixture
def nothing_allocated(monkeypatch):
    """Fail if a backbone is built, experts are copied or the weights are loaded (the meta-device
    sizes of a config's backbone, `architecture_of`, stay allowed: they take no memory)."""
    monkeypatch.setattr(DINOv3Backbone, "__init__", forbidden)
    monkeypatch.setattr(moe.Experts, "__init__", forbidden)
    monkeypatch.setattr("m2dino.models.hub.load_weights", forbidden)


@pytest.fixture
def timm_never_called(monkeypatch):
    monkeypatch.setattr("timm.create_model", forbidden)


@pytest.fixture
def nothing_unpickled(monkeypatch):
    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr("timm.models._factory.load_checkpoint", forbidden)
    monkeypatch.setattr("m2dino.models.pretrained_weights.load_backbone_weights", forbidden)


def refusal(folder, error=ValueError) -> str:
    with pytest.raises(error) as info:
        M2DINO.from_pretrained(folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(folder / "config.json"))
    return message


# ---------------------------------------------------------------- 1. num_experts, checked against the weights
def test_a_billion_experts_is_refused_before_any_expert_is_copied(saved, tmp_path, nothing_allocated):
    message = refusal(folder_with(saved, tmp_path, num_experts=1_000_000_000), LimitError)
    assert "num_experts=1,000,000,000 exceeds m2dino's limit of 512" in message
    assert "M2DINO_MAX_EXPERTS" in message


@pytest.mark.parametrize("changes, expected", [
    ({"num_experts": 500}, r"num_experts=500 but .*model.safetensors holds 2 experts in block 3"),
    ({"backbone_overrides": {"embed_dim": 128, "num_heads": 2}},
     r"backbone_overrides.embed_dim=128 but .* holds width 64 \(the config's backbone has width 128\)"),
    ({"backbone_overrides": {"depth": 40}}, r"backbone_overrides.depth=40 but .* holds 4 blocks"),
    ({"backbone": "mini"}, r"backbone='vit_mini_patch16_dinov3' but .* holds width 64"),
    ({"backbone_overrides": {"mlp_ratio": 8}}, r"backbone_overrides.mlp_ratio=8 but .* holds MLP width 256"),
    ({"moe_blocks": [2, 3]}, r"moe_blocks=\[2, 3\] but .* holds MoE blocks \[3\]"),
    ({"routing": "task+token"}, r"routing='task\+token' but .* holds no token router in block 3"),
    ({"task_embed_dim": 4096}, r"task_embed_dim=4096 but .* holds task embeddings of width 64"),
])
def test_a_config_that_contradicts_its_weights_names_the_field(saved, tmp_path, nothing_allocated, changes,
                                                               expected):
    assert re.search(expected, refusal(folder_with(saved, tmp_path, **changes), ConfigMismatch))


def test_every_other_mismatch_is_found_on_the_meta_device_before_allocation(saved, tmp_path, monkeypatch):
    monkeypatch.setattr("m2dino.models.hub.load_weights", forbidden)
    with pytest.raises(ValueError, match=r"model.safetensors: checkpoint does not match the model built from its "
                                         r"config: .*shape mismatches \(heads\.fetal_head\..*: checkpoint \(8,\) "
                                         r"vs model \(96,\)"):
        M2DINO.from_pretrained(folder_with(saved, tmp_path, decoder_features=96))


@pytest.mark.parametrize("changes, expected", [
    ({"moe_blocks": [100]}, "moe_blocks: block 100 is beyond m2dino's limit of 64 blocks"),
    ({"moe_blocks": list(range(70))}, "moe_blocks count=70 exceeds m2dino's limit of 64"),
    ({"feature_blocks": [0, 1, 2, 10**9]}, "feature_blocks: block 1,000,000,000 is beyond"),
    ({"collapsed_moe": {"3": 10**9}}, r"collapsed_moe\[3\]=1,000,000,000 exceeds m2dino's limit of 512"),
    ({"top_k": 10**9}, "top_k=1,000,000,000 exceeds"),
    ({"decoder_features": 10**7}, "decoder_features=10,000,000 exceeds m2dino's limit of 8,192"),
    ({"task_embed_dim": 10**7}, "task_embed_dim=10,000,000 exceeds"),
    ({"num_experts": 0}, "num_experts=0: expected a whole number >= 1"),
    ({"drop_path_rate": float("nan")}, "drop_path_rate=nan: expected a finite number in \\[0, 1\\]"),
])
def test_every_size_in_config_json_is_bounded(saved, tmp_path, nothing_allocated, changes, expected):
    with pytest.raises(LimitError, match=expected):
        M2DINO.from_pretrained(folder_with(saved, tmp_path, **changes))


def test_a_bound_is_raised_by_its_environment_variable(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("M2DINO_MAX_EXPERTS", "1")
    message = refusal(folder_with(saved, tmp_path), LimitError)
    assert "num_experts=2 exceeds m2dino's limit of 1 (raise it with M2DINO_MAX_EXPERTS" in message


# ---------------------------------------------------------------------------------- 2. image_size
def test_a_million_pixel_side_is_refused_at_load(saved, tmp_path, nothing_allocated):
    message = refusal(folder_with(saved, tmp_path, image_size=[1_000_000, 1_000_000]), LimitError)
    assert "image_size side=1,000,000 exceeds m2dino's limit of 2,048" in message
    assert "M2DINO_MAX_INPUT_SIDE" in message


# -------------------------------------------------------- 3. backbone_overrides: an allow-list, never a path
@pytest.mark.parametrize("overrides, key", [
    ({"checkpoint_path": "PICKLE"}, "checkpoint_path"),
    ({"pretrained_cfg_overlay": {"file": "PICKLE"}}, "pretrained_cfg_overlay"),
    ({"pretrained": True}, "pretrained"),
    ({"cache_dir": "/tmp"}, "cache_dir"),
    ({"qkv_bias": "PICKLE"}, "qkv_bias"),            # a path where a flag belongs
    ({"rope_temperature": "PICKLE"}, "rope_temperature"),
])
def test_backbone_overrides_take_only_architecture_settings(saved, tmp_path, nothing_allocated, nothing_unpickled,
                                                            overrides, key):
    pickle = tmp_path / "evil.pth"
    pickle.write_bytes(b"\x80\x04not really")
    overrides = json.loads(json.dumps(overrides).replace("PICKLE", str(pickle)))
    model = tmp_path / "model"
    model.mkdir()
    message = refusal(folder_with(saved, model, backbone_overrides=overrides))
    assert f"backbone_overrides.{key}" in message


def test_the_allow_list_holds_for_every_backbone_built(timm_never_called, nothing_unpickled, tmp_path):
    # a pretraining YAML's backbone_overrides reach DINOv3Backbone directly
    with pytest.raises(ValueError, match="backbone_overrides.checkpoint_path: not an architecture setting"):
        DINOv3Backbone("test", checkpoint_path=str(tmp_path / "x.pth"))


def test_backbone_weights_in_a_config_is_never_read(saved, tmp_path, nothing_unpickled):
    pickle = tmp_path / "evil.pth"
    pickle.write_bytes(b"\x80\x04not really")
    model = tmp_path / "model"
    model.mkdir()
    loaded = M2DINO.from_pretrained(folder_with(saved, model, backbone_weights=str(pickle)))
    assert loaded.config.backbone_weights == str(pickle)  # provenance, shown on the model card only


def test_a_valid_folder_still_loads_without_unpickling(saved, nothing_unpickled):
    model = M2DINO.from_pretrained(saved[0])
    assert model.task_ids == ["fetal_head"] and model.moe_blocks == (3,)


# --------------------------------------------------------------------------- 4. widths, depth, heads
@pytest.mark.parametrize("overrides, expected", [
    ({"embed_dim": 1_000_000}, "backbone_overrides.embed_dim=1,000,000 exceeds m2dino's limit of 8,192"),
    ({"embed_dim": 1e6}, r"backbone_overrides.embed_dim=1000000.0: expected a whole number >= 1"),
    ({"depth": 1_000_000}, "backbone_overrides.depth=1,000,000 exceeds m2dino's limit of 64"),
    ({"num_heads": 1_000_000}, "backbone_overrides.num_heads=1,000,000 exceeds"),
    ({"mlp_ratio": 1e6}, r"backbone_overrides.mlp_ratio=1000000.0: expected a finite number in \[0, 16\]"),
    ({"embed_dim": 4096, "mlp_ratio": 16}, "MLP width \\(embed_dim × mlp_ratio\\)=65,536 exceeds"),
    ({"num_reg_tokens": 10**9}, "backbone_overrides.num_reg_tokens=1,000,000,000 exceeds m2dino's limit of 64"),
])
def test_backbone_widths_are_bounded_before_building(saved, tmp_path, timm_never_called, overrides, expected):
    with pytest.raises(LimitError, match=expected):
        M2DINO.from_pretrained(folder_with(saved, tmp_path, backbone_overrides=overrides))
    with pytest.raises(LimitError, match=expected):  # a pretraining YAML's overrides reach the backbone directly
        DINOv3Backbone("test", **overrides)


# ------------------------------------------------------------------------------- 5. saved task specs
def spec_with(**changes) -> dict:
    return {**get_task("fetal_head").to_dict(), **changes}


@pytest.mark.parametrize("changes, expected", [
    ({"class_names": None}, "task 'fetal_head': field 'class_names' is None; expected a list of class names"),
    ({"num_classes": "2"}, "task 'fetal_head': field 'num_classes' is '2'; expected a whole number >= 0"),
    ({"num_classes": 10**9}, "task 'fetal_head': num_classes=1,000,000,000 exceeds m2dino's limit"),
    ({"augmentations": "hflip"}, "task 'fetal_head': field 'augmentations' is 'hflip'"),
    ({"type": "painting"}, "task 'fetal_head': field 'type' is 'painting'; expected one of"),
    ({"max_boxes": 0}, "task 'fetal_head': field 'max_boxes' is 0; expected a whole number >= 1"),
    ({"benchmark": "yes"}, "task 'fetal_head': field 'benchmark' is 'yes'; expected true or false"),
    ({"id": None}, "task ?: field 'id' is None; expected a string"),
])
def test_a_malformed_saved_task_spec_names_the_task_and_field(saved, tmp_path, nothing_allocated, changes,
                                                              expected):
    message = refusal(folder_with(saved, tmp_path, task_specs={"fetal_head": spec_with(**changes)}))
    assert expected in message, message


def test_a_task_spec_that_is_not_an_object_or_lacks_a_field(saved, tmp_path):
    with pytest.raises(ValueError, match="task spec None: expected an object of task fields"):
        TaskSpec.from_dict(None)
    spec = spec_with()
    del spec["class_names"]
    with pytest.raises(ValueError, match="task spec 'fetal_head': field 'class_names' missing; expected a list"):
        TaskSpec.from_dict(spec)
    with pytest.raises(ValueError, match=r"task_specs\['fetal_head'\] is the spec of task 'other'"):
        M2DINO.from_pretrained(folder_with(saved, tmp_path, task_specs={"fetal_head": spec_with(id="other")}))


def test_a_transformers_checkpoint_config_is_bounded_too(tmp_path, timm_never_called):
    # `--pretrained FOLDER` (a downloaded DINOv3ViTModel): its config.json sizes the backbone
    from m2dino.models.pretrained_weights import backbone_spec_for_weights

    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "dinov3_vit", "hidden_size": 1_000_000, "intermediate_size": 256, "num_hidden_layers": 2,
        "num_attention_heads": 2, "num_register_tokens": 4}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(LimitError, match=r"config.json: hidden_size=1,000,000 exceeds m2dino's limit of 8,192"):
        backbone_spec_for_weights(tmp_path)
