"""All four parts of `benchmarks/speed.py` on a tiny backbone: every table is produced and rendered."""

import pytest
import torch

import speed
from speed_parts.plan import Plan
from speed_parts.report import markdown

pytestmark = pytest.mark.slow  # ~15 s on the shared 2-core machine
CELL = ((32, "fp32"),)


@pytest.fixture(scope="module")
def result() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    plan = Plan(backbone="test", batch=2, sizes=(32,), precisions=("fp32",), backbone_rounds=(1, 1), glue_rounds=1,
                block_rounds=(1, 1), block_full_cells=CELL, block_grid=((4, 1),), block_one_thread_cells=(),
                model_rounds=(1, 1), model_full_cells=(), model_cells=CELL, model_subset=((4, 1, "last4"),),
                model_control_cells=CELL, all_rounds=1, all_parts_rounds=1, all_cells=CELL, decoder_features=8,
                throughput=True, throughput_backbones=("vit_test_patch16_dinov3",), throughput_batch=2,
                throughput_size=32, throughput_rounds=1)
    try:
        yield speed.run(plan, set(speed.PARTS), peak_tflops=100.0)
    finally:
        torch.set_num_threads(threads)


def test_measured_parts(result):
    backbone = result["backbone"][0]
    assert backbone["max_abs_diff_fp32"] == 0.0                  # same weights: timm's output exactly
    block, model = result["moe_block"][0], result["moe_model"][0]
    assert block["control"] and "control" in model                # both A/A controls measured
    assert [c["batch"] for c in model["cells"]] == ["single", "mixed"]
    assert block["cells"][0]["max_abs_diff_vs_dense"] < 1e-5     # upcycled experts = the dense MLP
    everything = result["all_tasks"][0]
    assert everything["tasks"] == 27 and everything["shared_blocks"] == 0  # 'last4' of 4 blocks: all routed
    assert everything["max_abs_diff_all_vs_single"] < 1e-4
    assert [r["variant"] for r in result["throughput"]] == ["dense", "MoE E8 k1 last4"]
    assert result["throughput"][0]["mfu"] is not None
    # 1 + 1 + 2·1 + 2·1 backbone pairs (whole, glue, loop: forward and train), 3 variants × 2 steps per block
    # and per model cell, 1 + 3 for all tasks, 1 for throughput
    assert result["pairs"]["pairs"] == 6 + 6 + 6 + 4 + 1


def test_report_has_every_section(result):
    report = markdown(result)
    for heading in ("## 1. Backbone vs timm", "## 2. MoE overhead", "### Whole backbone, measured directly",
                    "## 3. All tasks at once", "## 4. GPU: training throughput", "## Targets"):
        assert heading in report
    assert report.count("A/A: dense vs dense") == 3               # per block forward + train, whole backbone
    assert f"`{result['all_tasks'][0]['all_call']}(x, all 27 tasks)`" in report  # names the call it timed
