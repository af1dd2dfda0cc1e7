import json
import os
import signal

import pytest
import torch

from m2dino import M2DINO, M2DINOConfig
from m2dino.training import NonFiniteLossError, TrainConfig, Trainer

from .fake_data import TASKS, fake_data


def tiny_model(tasks=TASKS, seed=0):
    torch.manual_seed(seed)
    return M2DINO(M2DINOConfig(backbone="test", tasks=list(tasks), moe_blocks=(2, 3), num_experts=4, top_k=1,
                               decoder_features=8, image_size=32))


def config(tmp_path, **kw):
    defaults = dict(output_dir=str(tmp_path), steps=8, batch_size=4, eval_every=1000, warmup_steps=2, log_every=1)
    return TrainConfig(**{**defaults, **kw})


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_run_writes_a_loadable_model_a_log_and_evaluations(tmp_path):
    train, val = fake_data()
    result = Trainer(tiny_model(), train, val, config(tmp_path, eval_every=4), progress=False).train()
    assert result.steps_done == 8 and not result.interrupted
    assert set(result.scores) == set(TASKS) and all(0 <= s <= 1 for s in result.scores.values())
    loaded = M2DINO.from_pretrained(tmp_path)
    assert loaded.task_ids == TASKS and loaded.config.training["steps"] == 8
    assert (tmp_path / "best" / "model.safetensors").is_file()
    card = (tmp_path / "README.md").read_text()
    assert "## Evaluation" in card and "## Training configuration" in card
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == list(range(1, 9)) and {e["task"] for e in steps} <= set(TASKS)
    assert [e["step"] for e in log if "eval" in e] == [4, 8]
    # the scalar head was standardised on the training targets (100..107)
    assert loaded.heads["fetal_head_circumference"].target_mean == pytest.approx(103.5)


def test_resume_gives_the_same_weights_as_training_straight_through(tmp_path):
    train, val = fake_data()
    straight = tiny_model()
    Trainer(straight, train, val, config(tmp_path / "a"), progress=False).train()

    def stop_at_4(trainer, step):
        if step == 4:
            trainer.request_stop()

    first = Trainer(tiny_model(), train, val, config(tmp_path / "b"), step_callback=stop_at_4, progress=False).train()
    assert first.interrupted and first.steps_done == 4
    assert (tmp_path / "b" / "checkpoints" / "latest").read_text() == "step_00000004"
    resumed = tiny_model(seed=123)  # different init: everything must come from the checkpoint
    result = Trainer(resumed, train, val, config(tmp_path / "b"), resume="latest", progress=False).train()
    assert result.steps_done == 8
    for key, value in weights(straight).items():
        torch.testing.assert_close(resumed.state_dict()[key], value, atol=1e-6, rtol=0, msg=key)


def test_sigterm_writes_a_checkpoint_and_stops(tmp_path):
    train, val = fake_data()

    def terminate(trainer, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    result = Trainer(tiny_model(), train, val, config(tmp_path), step_callback=terminate, progress=False).train()
    assert result.interrupted and result.steps_done == 3
    assert (tmp_path / "checkpoints" / "step_00000003" / "model.safetensors").is_file()
    assert not list((tmp_path / "checkpoints").glob(".*tmp"))
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored


def test_non_finite_losses_are_skipped_counted_and_logged(tmp_path, monkeypatch):
    train, val = fake_data(tasks=["fetal_plane_cls", "IUGC"])
    model = tiny_model(tasks=["fetal_plane_cls", "IUGC"])
    original = model.heads["IUGC"].loss
    monkeypatch.setattr(model.heads["IUGC"], "loss", lambda out, t: original(out, t) * float("nan"))
    result = Trainer(model, train, val, config(tmp_path, steps=6, max_nonfinite_in_row=50, alpha=0.0),
                     progress=False).train()
    assert result.steps_done == 6 and result.nonfinite_steps > 0
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sum(1 for e in log if e.get("nonfinite_loss")) == result.nonfinite_steps
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_too_many_non_finite_losses_in_a_row_stop_the_run(tmp_path, monkeypatch):
    train, val = fake_data(tasks=["IUGC"])
    model = tiny_model(tasks=["IUGC"])
    monkeypatch.setattr(model.heads["IUGC"], "loss", lambda out, t: out.keypoints.sum() * float("inf"))
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row \\(last task 'IUGC'"):
        Trainer(model, train, val, config(tmp_path, max_nonfinite_in_row=3), progress=False).train()


def test_frozen_backbone_trains_heads_and_routers_only(tmp_path):
    train, val = fake_data()
    model = tiny_model()
    before = weights(model)
    Trainer(model, train, val, config(tmp_path, freeze_backbone=True, steps=4), progress=False).train()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all(not k.startswith("backbone.") or ".router." in k for k in changed)
    assert any(k.startswith("heads.") for k in changed)
    assert M2DINO.from_pretrained(tmp_path).config.training["freeze_backbone"] is True


def test_lora_trains_adapters_and_saves_a_merged_plain_model(tmp_path):
    train, val = fake_data(tasks=["fetal_plane_cls", "fetal_head"])
    model = tiny_model(tasks=["fetal_plane_cls", "fetal_head"])
    with torch.no_grad():  # a trained-looking layer scale, so the adapters get a useful gradient
        for block in model.backbone.blocks:
            block.gamma_1.fill_(1.0)
            block.gamma_2.fill_(1.0)
    base = weights(model)
    trainer = Trainer(model, train, val, config(tmp_path, lora_rank=2, steps=4, lr=1e-2, backbone_lr=1e-2),
                      progress=False)
    lora_params = [n for n, p in trainer.model.named_parameters() if "lora_" in n and p.requires_grad]
    assert any("attn.qkv" in n for n in lora_params) and any("experts.experts.0.fc1" in n for n in lora_params)
    assert any("blocks.0.mlp.fc1" in n for n in lora_params)
    trainer.train()
    saved = M2DINO.from_pretrained(tmp_path)
    assert saved.config.training["lora_rank"] == 2
    assert not any("lora" in k for k in saved.state_dict())
    qkv = "backbone.blocks.0.attn.qkv.weight"
    assert not torch.allclose(saved.state_dict()[qkv], base[qkv])  # LoRA delta merged in
    # merging happened on a copy: the training model still holds its adapters
    assert any("lora_" in name for name, _ in trainer.model.named_parameters())


def test_uncertainty_weighting_learns_one_weight_per_task(tmp_path):
    train, val = fake_data(tasks=["fetal_plane_cls", "IUGC"])
    trainer = Trainer(tiny_model(tasks=["fetal_plane_cls", "IUGC"]), train, val,
                      config(tmp_path, loss_weighting="uncertainty", steps=4, lr=0.05), progress=False)
    trainer.train()
    weights_ = trainer.weighting.weights()
    assert set(weights_) == {"fetal_plane_cls", "IUGC"} and any(abs(w - 1.0) > 1e-3 for w in weights_.values())


def test_config_errors():
    with pytest.raises(ValueError, match="choose --lora or --freeze-backbone"):
        TrainConfig(lora_rank=4, freeze_backbone=True)
    with pytest.raises(ValueError, match="loss_weighting='gradnorm'"):
        TrainConfig(loss_weighting="gradnorm")
    with pytest.raises(ValueError, match="training data for tasks the model does not have: \\['cervix'\\]"):
        Trainer(tiny_model(tasks=["IUGC"]), {"cervix": []}, {}, TrainConfig(output_dir="/tmp/x"))
