"""feed_parts.moe: the previous per-expert loop it keeps as the baseline computes what the grouped
dispatch computes, and one tiny measurement yields a complete row per cell."""

import torch

from feed_parts.moe import moe_ratios, with_loop_dispatch
from m2dino import M2DINO, M2DINOConfig

TASKS = ["fetal_head", "IUGC", "fetal_plane_cls", "thyroid_nodule_det"]


def test_the_loop_baseline_equals_the_grouped_dispatch_outputs_and_gradients():
    torch.manual_seed(0)
    new = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(2, 3), num_experts=4, top_k=2,
                              routing="task+token", image_size=(32, 32)))
    new.backbone.reset_layerscale(1.0)
    for moe in new.moe_modules():  # distinct experts and real token routing
        with torch.no_grad():
            for param in moe.experts.parameters():
                param.add_(torch.randn_like(param) * 0.3)
            torch.nn.init.normal_(moe.router.token_proj.weight, std=1.0)
    old = with_loop_dispatch(new)
    assert type(old.moe_modules()[0].experts).__name__ == "LoopExperts"
    x = torch.randn(4, 3, 32, 32)
    for tasks in (TASKS[0], TASKS):
        losses = []
        for model in (old, new):
            model.zero_grad()
            features = model.forward_features(x, tasks)
            (features.tokens.square().mean() + features.aux_loss).backward()
            losses.append((features.tokens, {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
        (old_tokens, old_grads), (new_tokens, new_grads) = losses
        torch.testing.assert_close(new_tokens, old_tokens, atol=2e-5, rtol=1e-5)
        # the loop leaves unchosen experts without a gradient; the grouped dispatch gives them zeros
        assert set(old_grads) <= set(new_grads)
        for name, grad in new_grads.items():
            want = old_grads.get(name, torch.zeros_like(grad))
            torch.testing.assert_close(grad, want, atol=2e-5, rtol=1e-4, msg=lambda m, name=name: f"{name}: {m}")


def test_a_tiny_measurement_has_every_ratio():
    rows = moe_ratios(batch_sizes=(2,), backbone="test", configs=((2, 1),), image_sizes={2: 32}, rounds=1,
                      warmup=0, retries=0)
    assert [(r["scope"], r["tasks"]) for r in rows] == [("block", "single"), ("model", "single"),
                                                        ("block", "mixed"), ("model", "mixed")]
    for row in rows:
        assert row["max_abs_diff_old_new"] < 1e-4
        assert all(value > 0 for key, value in row.items() if key.endswith(("_vs_dense", "_vs_old", "_seconds")))
        assert row["pairs"]["pairs"] == 2
