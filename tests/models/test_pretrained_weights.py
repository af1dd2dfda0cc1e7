"""`load_backbone_weights`: every source kind, no network; the errors name what is wrong."""

from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import save_file

from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.convert_transformers import backbone_spec_from_transformers_config
from m2dino.models.moe import TaskMoE
from m2dino.models.pretrained_weights import default_weights, load_backbone_weights

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def save(state: dict, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """A Hugging Face cache pre-filled by hand; the Hub itself unreachable.

    huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE once, at import, into
    `huggingface_hub.constants` (and looks both up there on every call), so setting the environment now
    is not enough: the constants are patched too, as a user's exported variables would have set them.
    ``publish(repo_id, {filename: path})`` writes the cache layout
    ``models--org--name/{snapshots/<commit>/<file>, refs/main}``.
    """
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def publish(repo_id: str, files: dict[str, Path]) -> Path:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / COMMIT
        snapshot.mkdir(parents=True)
        for name, source in files.items():
            (snapshot / name).write_bytes(source.read_bytes())
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        return cache

    return publish


def test_timm_file(tmp_path, randomize):
    source = randomize(DINOv3Backbone("test"))
    target = DINOv3Backbone("test")
    report = load_backbone_weights(target, save(source.state_dict(), tmp_path / "w.safetensors"))
    assert_same_weights(source, target)
    assert report["format"] == "timm" and report["backbone"] == "vit_test_patch16_dinov3"
    assert report["missing_keys"] == report["unexpected_keys"] == report["dropped_zero_keys"] == []


def to_meta_layout(state: dict) -> dict:
    """Meta's original key names (what timm's checkpoint_filter_fn undoes), with its pretraining extras."""
    renames = [("reg_token", "storage_tokens"), ("gamma_1", "ls1.gamma"), ("gamma_2", "ls2.gamma"),
               ("mlp.fc1_g", "mlp.w1"), ("mlp.fc1_x", "mlp.w2"), ("mlp.fc2", "mlp.w3")]
    out = {}
    for key, value in state.items():
        if key.endswith("attn.q_bias"):
            # Meta's fused bias; its key part is masked by `bias_mask` in the model, so any value is ignored
            v_bias = state[key.replace("q_bias", "v_bias")]
            out[key.replace("q_bias", "qkv.bias")] = torch.cat([value, torch.randn_like(value), v_bias])
            continue
        if key.endswith("attn.v_bias"):
            continue
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    out["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    out["rope_embed.periods"] = torch.ones(8)
    return out


def test_meta_original_keys(tmp_path, randomize):
    kwargs = dict(embed_dim=64, depth=2, num_heads=2, qkv_bias=True)
    source = randomize(DINOv3Backbone("S+", **kwargs))
    target = DINOv3Backbone("S+", **kwargs)
    report = load_backbone_weights(target, save(to_meta_layout(source.state_dict()), tmp_path / "meta.safetensors"))
    assert_same_weights(source, target)
    assert report["format"] == "meta"


@pytest.mark.parametrize("shard", [None, "100KB"])
def test_transformers_folder(tmp_path, tiny_transformers, shard):
    model = tiny_transformers(use_gated_mlp=True, hidden_act="silu", intermediate_size=128)
    model.save_pretrained(tmp_path, **({"max_shard_size": shard} if shard else {}))
    assert (tmp_path / "model.safetensors.index.json").is_file() == bool(shard)
    name, overrides = backbone_spec_from_transformers_config(model.config)
    backbone = DINOv3Backbone(name, **overrides).eval()
    report = load_backbone_weights(backbone, tmp_path)
    assert report["format"] == "transformers" and (len(report["files"]) > 1) == bool(shard)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert (backbone(x) - model(pixel_values=x).last_hidden_state).abs().max() < 1e-5


def test_timm_hub_id_from_offline_cache(tmp_path, offline_hub, randomize):
    source = randomize(DINOv3Backbone("test"))
    cache = offline_hub("timm/vit_test_patch16_dinov3.unit", {"model.safetensors": save(
        source.state_dict(), tmp_path / "w.safetensors")})
    for kwargs in ({}, {"revision": COMMIT}, {"revision": "main", "cache_dir": cache}):
        target = DINOv3Backbone("test")
        report = load_backbone_weights(target, "timm/vit_test_patch16_dinov3.unit", **kwargs)
        assert_same_weights(source, target)
        assert report["files"] == [str(cache / "models--timm--vit_test_patch16_dinov3.unit" / "snapshots" / COMMIT /
                                       "model.safetensors")]


def test_transformers_hub_id_from_offline_cache(tmp_path, offline_hub, tiny_transformers):
    model = tiny_transformers()
    model.save_pretrained(tmp_path / "saved")
    offline_hub("acme/dinov3-tiny", {name: tmp_path / "saved" / name for name in ("config.json", "model.safetensors")})
    backbone = DINOv3Backbone("vit_small_patch16_dinov3", embed_dim=64, depth=2, num_heads=2, qkv_bias=True).eval()
    assert load_backbone_weights(backbone, "acme/dinov3-tiny", revision=COMMIT)["format"] == "transformers"
    x = torch.randn(1, 3, 16, 32)
    with torch.no_grad():
        assert (backbone(x) - model(pixel_values=x).last_hidden_state).abs().max() < 1e-5


def test_zero_qkv_biases_convert_either_way(tmp_path, randomize):
    """timm ships DINOv3 with and without (zero) q/v biases; a zero bias is the same as none."""
    with_bias = randomize(DINOv3Backbone("test", qkv_bias=True))
    for block in with_bias.blocks:
        block.attn.q_bias.data.zero_()
        block.attn.v_bias.data.zero_()
    without = DINOv3Backbone("test")
    report = load_backbone_weights(without, save(with_bias.state_dict(), tmp_path / "biased.safetensors"))
    assert len(report["dropped_zero_keys"]) == 2 * 4
    back = DINOv3Backbone("test", qkv_bias=True)
    report = load_backbone_weights(back, save(without.state_dict(), tmp_path / "plain.safetensors"))
    assert len(report["added_zero_keys"]) == 2 * 4
    assert_same_weights(with_bias, back)


def test_nonzero_qkv_bias_into_bias_free_backbone(tmp_path, randomize):
    path = save(randomize(DINOv3Backbone("test", qkv_bias=True)).state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="non-zero blocks.0.attn.q_bias.*qkv_bias=True"):
        load_backbone_weights(DINOv3Backbone("test"), path)


@pytest.mark.parametrize("name", ["model.pth", "model.bin", "model.pt"])
def test_pickle_files_are_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="pickle.*safetensors only"):
        load_backbone_weights(DINOv3Backbone("test"), tmp_path / name)


def test_folder_with_only_pickle_weights(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin: pickle"):
        load_backbone_weights(DINOv3Backbone("test"), tmp_path)


def test_checkpoint_of_another_size(tmp_path):
    # a deeper and wider checkpoint than the backbone: both the shapes and the extra blocks are named
    path = save(DINOv3Backbone("test", embed_dim=96, depth=6, num_heads=3).state_dict(), tmp_path / "big.safetensors")
    with pytest.raises(ValueError, match=r"\(6 blocks, width 96\) does not fit backbone 'vit_test_patch16_dinov3' "
                                         r"\(4 blocks, width 64\): shape mismatches: "
                                         r"cls_token: expected \(1, 1, 64\), found \(1, 1, 96\).*"
                                         r"unexpected keys: blocks.4.attn.proj.bias"):
        load_backbone_weights(DINOv3Backbone("test"), path)


def test_transformers_checkpoint_of_another_architecture(tmp_path, tiny_transformers):
    tiny_transformers(rope_theta=50.0).save_pretrained(tmp_path)
    backbone = DINOv3Backbone("vit_small_patch16_dinov3", embed_dim=64, depth=2, num_heads=2, qkv_bias=True)
    with pytest.raises(ValueError, match="rope_temperature: backbone 100.0, checkpoint 50.0"):
        load_backbone_weights(backbone, tmp_path)


def test_backbone_with_moe_is_refused(tmp_path):
    backbone = DINOv3Backbone("test")
    path = save(backbone.state_dict(), tmp_path / "w.safetensors")
    backbone.blocks[1].mlp = TaskMoE(backbone.blocks[1].mlp, dim=64, task_embed_dim=8, num_experts=2, top_k=1)
    with pytest.raises(ValueError, match=r"MoE blocks \[1\].*dense backbone first"):
        load_backbone_weights(backbone, path)


def test_missing_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_backbone_weights(DINOv3Backbone("test"), tmp_path / "absent.safetensors")


def test_default_weights():
    assert default_weights("S") == "timm/vit_small_patch16_dinov3.lvd1689m"
    assert default_weights("vit_huge_plus_patch16_dinov3") == "timm/vit_huge_plus_patch16_dinov3.lvd1689m"
    with pytest.raises(ValueError, match="no pretrained weights"):
        default_weights("test")


def test_other_patch_size_is_not_resampled(tmp_path):
    state = DINOv3Backbone("test").state_dict()
    state["patch_embed.proj.weight"] = torch.zeros(64, 3, 14, 14)
    with pytest.raises(ValueError, match=r"\(14, 14\) patches; backbone 'vit_test_patch16_dinov3' is ViT/16"):
        load_backbone_weights(DINOv3Backbone("test"), save(state, tmp_path / "p14.safetensors"))


def test_revision_with_local_path(tmp_path):
    path = save(DINOv3Backbone("test").state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="Hub ids only"):
        load_backbone_weights(DINOv3Backbone("test"), path, revision="main")
