"""The pretrain recipe on two CPU processes (gloo, started by torchrun as in tests/training/test_distributed.py):
Sinkhorn-Knopp sums over both processes, DDP finds a gradient for every parameter even when a rank
masks no patch, and a resumed run ends where an uninterrupted one does."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}


def launch(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "recipes" / "pretrain.py"), "--backbone", "test", "--global-size", "32", "--local-size", "16",
               "--local-crops", "2", "--batch-size", "2", "--prototypes", "32", "--ibot-prototypes", "16",
               "--head-hidden", "32", "--head-bottleneck", "16", "--threads", "1", "--no-progress",
               "--warmup-steps", "1", "--log-every", "1", "--steps", "4", *args]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_two_process_pretraining_runs_and_resumes_exactly(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        image = np.zeros((48, 64), np.uint8)
        image[6:44, 8:58] = rng.integers(30, 255, (38, 50))
        Image.fromarray(image).save(scans / f"scan_{i}.png")
    launch("--data", str(scans), "--output-dir", str(tmp_path / "straight"), "--checkpoint-every", "2")
    checkpoint = tmp_path / "straight" / "checkpoints" / "step_00000002"
    assert json.loads((checkpoint / "training_state.json").read_text())["num_processes"] == 2
    # steps 3..4 again, from the step-2 checkpoint the straight run left on its way (one launch fewer than
    # a separate run to make it: each launch starts three Python processes that import torch)
    resumed = tmp_path / "resumed"
    shutil.copytree(checkpoint, resumed / "checkpoints" / checkpoint.name)
    launch("--data", str(scans), "--output-dir", str(resumed), "--checkpoint-every", "2",
           "--resume", str(resumed / "checkpoints" / checkpoint.name))
    # it did start at step 3 (a run that ignored --resume would also end on the same weights)
    assert [json.loads(line)["step"] for line in (resumed / "log.jsonl").read_text().splitlines()] == [3, 4]
    a = load_file(str(tmp_path / "straight" / "backbone.safetensors"))
    b = load_file(str(resumed / "backbone.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [json.loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4] and all(np.isfinite(r["loss"]) for r in records)
