"""Two CPU processes (gloo) through `accelerate launch`, as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m2dino import M2DINO

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_process_cpu_run_trains_the_same_task_on_every_rank(tmp_path):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "recipes" / "unified.py"), "--backbone", "test", "--tasks", "fetal_head", "fetal_plane_cls",
               "IUGC", "--synthetic-per-task", "8", "--image-size", "32", "--batch-size", "2", "--steps", "6",
               "--eval-every", "3", "--log-every", "1", "--decoder-features", "8", "--warmup-steps", "1", "--output-dir", str(tmp_path),
               "--no-progress"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # the engine gathers every rank's task each step and raises if they differ, so finishing proves it
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert [e["step"] for e in log if "eval" in e] == [3, 6]
    model = M2DINO.from_pretrained(tmp_path)
    assert model.task_ids == ["fetal_head", "fetal_plane_cls", "IUGC"]
    assert "Mean normalised score over 3 tasks" in run.stdout
