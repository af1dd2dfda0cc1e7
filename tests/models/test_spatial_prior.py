"""The spatial-prior branch (`M2DINOConfig.spatial_prior`): off by default and then nothing changes (the
shipped zoo model included); on, it feeds strides 4 and 8 to the dense heads only, leaves the (pretrained)
backbone's computation alone, trains, round-trips, runs once for `predict_all`, survives task surgery
and ONNX export, and works with every backbone width."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from m2dino import M2DINO, M2DINOConfig
from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.heads.dpt import DPTDecoder
from m2dino.models.pretrained_weights import load_backbone_weights
from m2dino.models.spatial_prior import STRIDES, SpatialPrior
from m2dino.recipes.building import model_config
from m2dino.recipes.config_io import apply_overrides
from m2dino.recipes.run_config import RunConfig

from .helpers import FOUR_TYPES, assert_outputs_equal, tiny_config, tiny_model

SEG, CLS, DET, KPT = FOUR_TYPES  # fetal_head, fetal_plane_cls, thyroid_nodule_det, IUGC
DENSE = (SEG, DET, KPT)


def _pixels(batch: int = 2, size: tuple[int, int] = (32, 48), seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def _tensors(output) -> dict[str, torch.Tensor]:
    return {k: v for k, v in vars(output).items() if torch.is_tensor(v) and k != "aux_loss"}


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_maps_at_strides_4_and_8_at_the_decoder_width():
    maps = SpatialPrior(features=16)(_pixels(3, (32, 48)))
    assert {s: tuple(m.shape) for s, m in maps.items()} == {4: (3, 16, 8, 12), 8: (3, 16, 4, 6)}
    assert tuple(maps) == STRIDES


def test_the_decoder_adds_each_skip_to_the_level_of_its_stride():
    torch.manual_seed(0)
    decoder = DPTDecoder(in_dim=8, features=4).eval()
    levels = [torch.randn(1, 8, 2, 3) for _ in range(4)]
    skips = {4: torch.randn(1, 4, 8, 12), 8: torch.randn(1, 4, 4, 6)}
    with torch.no_grad():
        plain = decoder(levels)
        assert torch.equal(decoder(levels, {s: torch.zeros_like(m) for s, m in skips.items()}), plain)
        for stride, skip in skips.items():
            assert not torch.allclose(decoder(levels, {stride: skip}), plain), stride


def test_off_by_default_leaves_the_state_dict_and_config_files_as_before():
    assert M2DINOConfig().spatial_prior is False
    model = tiny_model()
    assert model.spatial_prior is None
    assert not any(key.startswith("spatial_prior.") for key in model.state_dict())
    saved = tiny_config().to_dict()
    del saved["spatial_prior"]  # a config.json written before the option existed
    assert M2DINOConfig.from_dict(saved).spatial_prior is False


def test_the_shipped_zoo_model_loads_unchanged_and_computes_what_its_heads_did_before():
    model = M2DINO.from_pretrained("m2dino-mini-ccby")
    assert model.spatial_prior is None and not model.config.spatial_prior
    x = _pixels(2, model.config.image_size)
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        for task in model.task_ids:
            # the path before the option: the backbone's own output straight into the head
            backbone = model.backbone.forward_features(x, model.routing([task] * 2), model.feature_blocks)
            levels = [backbone.intermediates[b] for b in model.feature_blocks]
            before = model.heads[task](backbone, levels, task, size)
            for name, value in _tensors(before).items():
                assert torch.equal(getattr(model(x, task=task), name), value), (task, name)


def test_dense_heads_read_the_branch_and_classification_does_not_run_it():
    model = tiny_model(spatial_prior=True)
    calls = _count_calls(model.spatial_prior)
    x = _pixels()
    with torch.no_grad():
        before = {t: _tensors(model(x, task=t)) for t in FOUR_TYPES}
        assert len(calls) == len(DENSE)  # once per dense batch; the classification batch skips it
        for projection in model.spatial_prior.project:
            projection.bias.add_(1.0)
        after = {t: _tensors(model(x, task=t)) for t in FOUR_TYPES}
    for task in FOUR_TYPES:
        changed = any(not torch.equal(before[task][k], after[task][k]) for k in before[task])
        assert changed == (task in DENSE), task


def _pretrained_file(tmp_path, randomize) -> str:
    path = tmp_path / "dinov3_test.safetensors"
    state = randomize(DINOv3Backbone("test")).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def test_pretrained_backbone_computes_the_same_features_with_and_without_the_branch(tmp_path, randomize):
    weights = _pretrained_file(tmp_path, randomize)
    reference = DINOv3Backbone("test")
    load_backbone_weights(reference, weights)
    models = {}
    for seed, prior in ((0, False), (1, True)):  # other seeds: heads and branch differ, the backbone must not
        torch.manual_seed(seed)
        models[prior] = M2DINO(tiny_config(moe_blocks=(), spatial_prior=prior), backbone_weights=weights).eval()
    without, with_prior = models[False], models[True]
    assert with_prior.backbone.state_dict().keys() == without.backbone.state_dict().keys()
    for key, value in without.backbone.state_dict().items():
        assert torch.equal(with_prior.backbone.state_dict()[key], value), key
    x = _pixels()
    with torch.no_grad():
        plain = without.forward_features(x, SEG)
        branched = with_prior.forward_features(x, SEG)
        dinov3 = reference.forward_features(x, None, without.feature_blocks)
    assert branched.spatial and not plain.spatial
    for features in (plain, branched):
        assert torch.equal(features.tokens, dinov3.tokens)
        for block, level in dinov3.intermediates.items():
            assert torch.equal(features.intermediates[block], level)


def test_gradient_reaches_the_branch_and_the_backbone():
    model = tiny_model(spatial_prior=True).train()
    x = _pixels()
    target = torch.randint(0, 2, (2, 32, 48), generator=torch.Generator().manual_seed(0))
    model.loss(model(x, task=SEG), target).backward()
    for name, param in [*model.spatial_prior.named_parameters(), ("backbone.patch_embed.proj.weight",
                                                                  model.backbone.patch_embed.proj.weight),
                        ("backbone.blocks.0.attn.qkv.weight", model.backbone.blocks[0].attn.qkv.weight)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_save_load_round_trip_is_exact(tmp_path):
    model = tiny_model(spatial_prior=True)
    model.save_pretrained(tmp_path / "saved")
    loaded = M2DINO.from_pretrained(tmp_path / "saved")
    assert loaded.config.spatial_prior is True and loaded.spatial_prior is not None
    x = _pixels()
    with torch.no_grad():
        for task in FOUR_TYPES:
            mine, theirs = _tensors(model(x, task=task)), _tensors(loaded(x, task=task))
            assert all(torch.equal(mine[k], theirs[k]) for k in mine), task


@pytest.mark.parametrize("saved_with", [True, False])
def test_a_config_that_contradicts_its_weights_is_refused(tmp_path, saved_with):
    tiny_model(spatial_prior=saved_with).save_pretrained(tmp_path)
    config = M2DINOConfig.load(tmp_path)
    config.spatial_prior = not saved_with
    config.save(tmp_path)
    problem = "unexpected" if saved_with else "missing"
    with pytest.raises(ValueError, match=rf"{problem} 19 keys \(e\.g\. spatial_prior\.project\.0\.bias"):
        M2DINO.from_pretrained(tmp_path)


def test_predict_all_runs_the_branch_once_for_every_task():
    model = tiny_model(spatial_prior=True)
    calls = _count_calls(model.spatial_prior)
    x = _pixels(1)
    with torch.no_grad():
        together = model.forward_all(x, FOUR_TYPES)
        assert len(calls) == 1
        for task in FOUR_TYPES:
            assert_outputs_equal(together[task], model(x, task=task))


def test_a_mixed_task_batch_gives_each_sample_its_own_maps():
    model = tiny_model(spatial_prior=True)
    x = _pixels(4)
    tasks = [SEG, CLS, DET, SEG]
    with torch.no_grad():
        mixed = model(x, task=tasks)
        for task, rows in mixed.indices.items():
            assert_outputs_equal(mixed.outputs[task], model(x[rows], task=task))


def test_extract_task_and_select_tasks_keep_the_branch(tmp_path):
    model = tiny_model(spatial_prior=True)
    x = _pixels()
    with torch.no_grad():
        single = model.extract_task(SEG)
        assert single.spatial_prior is not None and single.config.spatial_prior
        assert_outputs_equal(single(x, task=SEG), model(x, task=SEG))
        single.save_pretrained(tmp_path / "single")
        assert_outputs_equal(M2DINO.from_pretrained(tmp_path / "single")(x, task=SEG), model(x, task=SEG))
        expected = model(x, task=DET)
        model.select_tasks([DET, CLS])
        assert model.spatial_prior is not None
        assert_outputs_equal(model(x, task=DET), expected)


def test_features_without_the_maps_are_refused_by_a_dense_head():
    model = tiny_model(spatial_prior=True)
    x = _pixels()
    plain = model.backbone.forward_features(x, model.routing([SEG] * 2), model.feature_blocks)
    with pytest.raises(ValueError, match="lack; compute them with M2DINO.forward_features"):
        model.forward_head(SEG, plain, (32, 48))
    model.forward_head(CLS, plain, (32, 48))  # a head that reads no levels reads no maps either


@pytest.mark.parametrize("backbone", ["test", "mini", "S"])
def test_every_backbone_width(backbone):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone=backbone, tasks=[SEG, DET], decoder_features=16, image_size=32,
                                spatial_prior=True)).eval()
    with torch.no_grad():
        assert model(_pixels(1, (32, 32)), task=SEG).logits.shape == (1, 2, 32, 32)
        assert model(_pixels(1, (32, 32)), task=DET).heatmap_logits.shape == (1, 1, 8, 8)
    # the branch projects to the decoder width, so its size does not depend on the backbone's
    assert sum(p.numel() for p in model.spatial_prior.parameters()) == \
        sum(p.numel() for p in SpatialPrior(16).parameters())


def test_the_config_value_must_be_a_boolean():
    with pytest.raises(ValueError, match=r"M2DINOConfig.spatial_prior='yes': expected true or false"):
        tiny_config(spatial_prior="yes")
    saved = tiny_config().to_dict() | {"spatial_prior": 1}
    with pytest.raises(ValueError, match=r"config.json: field 'spatial_prior' is 1; expected true or false"):
        M2DINOConfig.from_dict(saved, source="config.json")


def test_the_run_config_switches_it_on():
    values = apply_overrides(RunConfig().to_dict(), ["model.spatial_prior=true"])
    settings = RunConfig.from_dict(values).model
    assert settings.spatial_prior is True
    assert model_config(settings, [SEG]).spatial_prior is True
    assert model_config(RunConfig().model, [SEG]).spatial_prior is False


def test_onnx_export_with_the_branch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from m2dino.models.onnx_export import export_onnx

    model = tiny_model(spatial_prior=True)
    manifest = export_onnx(model, [SEG, DET], tmp_path / "onnx")  # raises if onnxruntime differs from torch
    assert manifest["tasks"][SEG]["outputs"][0]["shape"] == ["batch", 2, 32, 48]
    assert manifest["tasks"][SEG]["self_check"]["max_abs_diff"]["logits"] < 1e-4
