"""The pretrain recipe end to end on a few synthetic PNGs: finite losses, exact resume, an output every
recipe loads, and the bad inputs (empty source, another architecture, a collapsed teacher)."""

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from m2dino.data import UnlabeledSource
from m2dino.models import M2DINO, M2DINOConfig
from m2dino.recipes.flags import build_pretrain_parser, cli_main, pretrain_config_from_flags
from m2dino.recipes.pretrain import main
from m2dino.training.pretrain import (
    CropConfig,
    LossConfig,
    PretrainConfig,
    PretrainTrainer,
    TeacherCollapseError,
)
from m2dino.training.pretrain.curves import read_log

TINY = ["--backbone", "test", "--global-size", "32", "--local-size", "16", "--local-crops", "2", "--batch-size", "3",
        "--prototypes", "32", "--ibot-prototypes", "16", "--head-hidden", "32", "--head-bottleneck", "16",
        "--threads", "1", "--no-progress", "--warmup-steps", "1", "--log-every", "1"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Six 48×64 'scans': speckle inside a black frame, one in a subfolder."""
    root = tmp_path_factory.mktemp("scans")
    (root / "more").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image = np.zeros((48, 64), np.uint8)
        image[6:44, 8:58] = rng.integers(30, 255, (38, 50))
        Image.fromarray(image).save(root / ("more" if i == 5 else ".") / f"scan_{i}.png")
    return root


def config(output_dir, steps, **changes):
    values = {"output_dir": str(output_dir), "backbone": "test", "steps": steps, "batch_size": 3, "warmup_steps": 1,
              "log_every": 1, "drop_path_rate": 0.1, "crops": CropConfig(global_size=32, local_size=16, local_crops=2),
              "loss": LossConfig(prototypes=32, ibot_prototypes=16, head_hidden=32, head_bottleneck=16,
                                 gram_weight=1.0)}
    return PretrainConfig(**{**values, **changes})


def test_recipe_trains_and_writes_a_backbone_every_recipe_loads(scans, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "run"
    assert main(["--data", str(scans), "--steps", "3", "--output-dir", str(out), "--gram-weight", "1", *TINY]) == 0
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        for name in ("loss", "dino_loss", "ibot_loss", "koleo_loss", "gram_loss", "teacher_spread"):
            assert np.isfinite(record[name]), (name, record)
    assert records[0]["teacher_temperature"] == 0.04 and records[0]["momentum"] == pytest.approx(0.992)
    card = (out / "README.md").read_text()
    assert str(scans) in card and "6 images; 3 steps" in card and "| dino_loss |" in card
    assert "![loss curves](loss_curves.png)" in card and (out / "loss_curves.png").stat().st_size > 1000
    mean_loss = np.mean([r["loss"] for r in records])
    assert f"| loss | {mean_loss:.4f} |" in card
    # resuming a finished run changes nothing (the card keeps its losses)
    assert main(["--data", str(scans), "--steps", "3", "--output-dir", str(out), "--gram-weight", "1", "--resume",
                 "latest", *TINY]) == 0
    assert (out / "README.md").read_text() == card

    weights = load_file(str(out / "backbone.safetensors"))
    assert "blocks.0.attn.qkv.weight" in weights and not any(k.startswith(("teacher", "student")) for k in weights)
    # M2DINO(config, backbone_weights=...) loads it, MoE blocks included (upcycled from the loaded MLPs)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head"], image_size=32, decoder_features=8,
                                moe_blocks=(2, 3)), backbone_weights=str(out / "backbone.safetensors"))
    torch.testing.assert_close(model.backbone.patch_embed.proj.weight, weights["patch_embed.proj.weight"])
    torch.testing.assert_close(model.backbone.blocks[0].attn.qkv.weight, weights["blocks.0.attn.qkv.weight"])
    # ... and so does the unified recipe's --pretrained (the path every recipe builds its model through)
    from m2dino.recipes.building import build_model
    from m2dino.recipes.run_config import ModelSettings

    settings = ModelSettings(backbone="test", pretrained=str(out / "backbone.safetensors"), image_size=32,
                             decoder_features=8)
    built = build_model(settings, ["fetal_head"], seed=0)
    torch.testing.assert_close(built.backbone.norm.weight, weights["norm.weight"])


def test_resume_is_exact(scans, tmp_path):
    torch.set_num_threads(1)
    source = UnlabeledSource.from_folder(scans)
    straight = PretrainTrainer(source, config(tmp_path / "straight", 4), progress=False)
    straight.train()

    def stop_at_two(trainer, step):
        if step == 2:
            trainer.request_stop()

    first = PretrainTrainer(source, config(tmp_path / "resumed", 4), progress=False, step_callback=stop_at_two)
    assert first.train() is None and first.counters["step"] == 2
    torch.manual_seed(123)  # whatever happened in between, the checkpoint restores the RNG states
    second = PretrainTrainer(source, config(tmp_path / "resumed", 4), progress=False, resume="latest")
    second.train()
    a = load_file(str(tmp_path / "straight" / "backbone.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "backbone.safetensors"))
    for key in a:
        assert torch.equal(a[key], b[key]), key
    full = load_file(str(tmp_path / "straight" / "checkpoints" / "step_00000004" / "model.safetensors"))
    again = load_file(str(tmp_path / "resumed" / "checkpoints" / "step_00000004" / "model.safetensors"))
    assert all(torch.equal(full[k], again[k]) for k in full)  # student, heads and teacher
    log, straight_log = read_log(tmp_path / "resumed" / "log.jsonl"), read_log(tmp_path / "straight" / "log.jsonl")
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == [r["loss"] for r in straight_log]
    with pytest.raises(ValueError, match="another configuration.*lr"):
        PretrainTrainer(source, config(tmp_path / "resumed", 4, lr=1e-3), progress=False, resume="latest")


def test_an_empty_source_is_one_error_naming_it(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(main, ["--data", str(empty), "--output-dir", str(tmp_path / "run"), *TINY]) == 2
    assert f"{empty}: no image files" in capsys.readouterr().err


def test_held_out_images_are_refused(scans, tmp_path, capsys):
    argv = ["--data", str(scans), "--held-out", str(scans / "more"), "--output-dir", str(tmp_path / "run"), *TINY]
    assert cli_main(main, argv) == 2
    assert "1 unlabelled image(s) are also validation/test images" in capsys.readouterr().err


def test_a_checkpoint_of_another_architecture_names_keys_and_shapes(scans, tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "small"
    assert main(["--data", str(scans), "--steps", "1", "--output-dir", str(out), *TINY]) == 0
    # the same architecture starts from it: student and teacher are the checkpoint, the heads are new
    start = str(out / "backbone.safetensors")
    trainer = PretrainTrainer(UnlabeledSource.from_folder(scans), config(tmp_path / "again", 1, pretrained=start),
                              progress=False)
    weights = load_file(start)
    for backbone in (trainer.core.student, trainer.core.teacher, trainer.core.gram_anchor):
        assert all(torch.equal(backbone.state_dict()[k], v) for k, v in weights.items())
    argv = ["--data", str(scans), "--output-dir", str(tmp_path / "big"), *TINY, "--backbone", "mini",
            "--pretrained", str(out / "backbone.safetensors")]
    assert cli_main(main, argv) == 2
    err = capsys.readouterr().err
    assert "does not fit backbone 'vit_mini_patch16_dinov3'" in err
    assert "cls_token: expected (1, 1, 128), found (1, 1, 64)" in err


def test_a_collapsed_teacher_is_logged_warned_and_stops_the_run(scans, tmp_path):
    torch.set_num_threads(1)
    source = UnlabeledSource.from_folder(scans)
    trainer = PretrainTrainer(source, config(tmp_path / "run", 10, lr=0.0, warmup_steps=0, collapse_patience=3),
                              progress=False)
    model = trainer.core
    with torch.no_grad():  # every image's final features become the same (zero): a collapsed network
        for backbone in (model.student, model.teacher):
            backbone.norm.weight.zero_()
            backbone.norm.bias.zero_()
    with pytest.warns(UserWarning, match="teacher collapse at step 1"), \
            pytest.raises(TeacherCollapseError, match="3 step\\(s\\) in a row; stopping"):
        trainer.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("teacher_collapse")] == [1, 2, 3]
    assert all(r["teacher_spread"] < 1e-3 for r in records)


def test_a_uniform_teacher_is_a_collapse_too(scans, tmp_path):
    """Outputs that differ per image but are even over the prototypes (the DINO loss then sits at ln K)."""
    torch.set_num_threads(1)
    source = UnlabeledSource.from_folder(scans)
    trainer = PretrainTrainer(source, config(tmp_path / "run", 10, lr=0.0, warmup_steps=0, collapse_patience=2,
                                             layerscale_init=1.0), progress=False)
    with torch.no_grad():  # every prototype the same vector: every image scores all prototypes alike
        for head in (trainer.core.dino_head, trainer.core.teacher_dino_head):
            head.prototypes.copy_(head.prototypes[:1].expand_as(head.prototypes))
    with pytest.warns(UserWarning, match="uniform over the prototypes"), \
            pytest.raises(TeacherCollapseError, match="2 step\\(s\\) in a row; stopping"):
        trainer.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["teacher_collapse"] for r in records] == ["uniform", "uniform"]
    assert all(r["teacher_entropy"] > 0.999 and r["teacher_spread"] >= 1e-3 for r in records)


def test_random_init_starts_from_a_larger_layerscale_and_pretrained_weights_keep_theirs(scans, tmp_path):
    args = ["--data", str(scans), "--output-dir", str(tmp_path / "run"), *TINY]
    assert pretrain_config_from_flags(build_pretrain_parser().parse_args(args)).layerscale_init == 0.1
    trainer = PretrainTrainer(UnlabeledSource.from_folder(scans), config(tmp_path / "run", 1, layerscale_init=0.1),
                              progress=False)
    assert all(torch.all(g == 0.1) for b in trainer.core.student.blocks for g in (b.gamma_1, b.gamma_2))
    assert torch.equal(trainer.core.teacher.blocks[0].gamma_1, trainer.core.student.blocks[0].gamma_1)
    # the CLS token now depends on the image (timm's 1e-5 leaves it blind: relative spread ~1e-6)
    with torch.no_grad():
        cls = trainer.core.student.forward_features(torch.randn(4, 3, 32, 32)).tokens[:, 0]
    assert float(cls.std(0).mean() / cls.pow(2).mean().sqrt()) > 1e-3
    with pytest.raises(ValueError, match="--layerscale-init applies to a random-init backbone"):
        pretrain_config_from_flags(build_pretrain_parser().parse_args([*args, "--pretrained", "w.safetensors",
                                                                       "--layerscale-init", "1"]))


def test_a_healthy_teacher_is_not_called_collapsed(scans, tmp_path):
    """The control: the same run from a backbone whose features differ per image raises nothing."""
    torch.set_num_threads(1)
    source = UnlabeledSource.from_folder(scans)
    trainer = PretrainTrainer(source, config(tmp_path / "run", 3, lr=0.0, warmup_steps=0, collapse_patience=1),
                              progress=False)
    with torch.no_grad():  # spread the CLS token's dependence on the image (random init barely has any)
        for backbone in (trainer.core.student, trainer.core.teacher):
            backbone.reset_layerscale(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer.train()
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert not any(r.get("teacher_collapse") for r in records)


def test_frozen_prototypes_stay_put_for_their_steps_and_then_train(scans, tmp_path):
    torch.set_num_threads(1)
    trainer = PretrainTrainer(UnlabeledSource.from_folder(scans),
                              config(tmp_path / "run", 3, freeze_prototypes_steps=2),
                              progress=False)
    start = {name: p.detach().clone() for name, p in trainer.core.named_parameters() if p.requires_grad}
    seen = {}
    trainer.step_callback = lambda t, step: seen.update(
        {step: {name: p.detach().clone() for name, p in t.core.named_parameters() if p.requires_grad}})
    trainer.train()
    for head in ("dino_head", "ibot_head"):
        name = f"{head}.prototypes"
        assert torch.equal(seen[2][name], start[name])      # steps 1 and 2: fixed
        assert not torch.equal(seen[3][name], start[name])  # step 3: trained
        assert not torch.equal(seen[1][f"{head}.mlp.0.weight"], start[f"{head}.mlp.0.weight"])
