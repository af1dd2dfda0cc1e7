"""Two CPU processes (gloo) on one machine, as a user would start them.

`accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up (it falls back
to its simple launcher), so the processes are started by torchrun, and ``ACCELERATE_USE_CPU``
makes accelerate join them into a gloo group; the test checks that two processes really ran."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from m2dino import M2DINO

REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--backbone", "test", "--tasks", "fetal_head", "fetal_plane_cls", "IUGC", "--synthetic-per-task", "8",
         "--image-size", "32", "--batch-size", "2", "--steps", "6", "--eval-every", "3", "--log-every", "1",
         "--decoder-features", "8", "--warmup-steps", "1", "--checkpoint-every", "3", "--threads", "1",
         "--no-progress"]


def two_processes(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "recipes" / "unified.py"), *FLAGS, *args]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_two_process_cpu_run_trains_the_same_task_on_every_rank_and_resumes_exactly(tmp_path):
    run = two_processes("--output-dir", str(tmp_path / "straight"))
    straight = tmp_path / "straight"
    checkpoint = straight / "checkpoints" / "step_00000003"
    assert json.loads((checkpoint / "training_state.json").read_text())["num_processes"] == 2
    assert (checkpoint / "rng_1.safetensors").is_file()  # the second process saved its own RNG state
    # the engine gathers every rank's task each step and raises if they differ, so finishing proves it
    log = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert [e["step"] for e in log if "eval" in e] == [3, 6]
    assert M2DINO.from_pretrained(straight).task_ids == ["fetal_head", "fetal_plane_cls", "IUGC"]
    assert "Mean normalised score over 3 tasks" in run.stdout

    resumed = tmp_path / "resumed"  # steps 4..6 again, from the step-3 checkpoint
    shutil.copytree(checkpoint, resumed / "checkpoints" / checkpoint.name)
    (resumed / "checkpoints" / "latest").write_text(checkpoint.name)
    two_processes("--output-dir", str(resumed), "--resume", "latest")
    a, b = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
