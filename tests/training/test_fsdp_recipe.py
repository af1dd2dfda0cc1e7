"""The unified recipe under FSDP on two CPU processes (gloo), started as `test_distributed.py` starts
them (torchrun, ACCELERATE_USE_CPU): it trains the default model (task-MoE blocks included), evaluates
mid-run and at the end on the main process from weights gathered out of every process's shards, saves
the whole model, and a second launch resumes a checkpoint to the same final weights."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file

from m2dino import M2DINO

from .test_distributed import COMMAND, ENV, REPO


def two_processes(output: Path, *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([*COMMAND, "--distributed", "fsdp", "--output-dir", str(output), *args],
                         capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_fsdp_recipe_on_two_cpu_processes_evaluates_saves_and_resumes_exactly(tmp_path):
    straight = tmp_path / "straight"  # 6 steps, evaluation and a checkpoint after step 3
    run = two_processes(straight)
    checkpoint = straight / "checkpoints" / "step_00000003"
    saved = json.loads((checkpoint / "training_state.json").read_text())
    assert (saved["storage"], saved["num_processes"]) == ("accelerate", 2)
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # the weights in shards
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "eval" in e] == [3, 6]
    assert (straight / "metrics.json").is_file() and "Mean normalised score over 3 tasks" in run.stdout
    model = M2DINO.from_pretrained(straight)  # the whole model, not a shard
    assert model.task_ids == ["fetal_head", "fetal_plane_cls", "IUGC"] and model.config.moe_blocks

    resumed = tmp_path / "resumed"  # steps 4..6 again, from the step-3 checkpoint
    shutil.copytree(checkpoint, resumed / "checkpoints" / checkpoint.name)
    (resumed / "checkpoints" / "latest").write_text(checkpoint.name)
    two_processes(resumed, "--resume", "latest")
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) == 0
