"""Two CPU processes (gloo) on one machine, as a user would start them.

`accelerate launch --cpu --num_processes 2` starts ONE process unless MPI is set up (it falls back
to its simple launcher), so the processes are started by torchrun, and ``ACCELERATE_USE_CPU``
makes accelerate join them into a gloo group; the test checks that two processes really ran."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from m2dino import M2DINO

REPO = Path(__file__).resolve().parents[2]
FLAGS = ["--backbone", "test", "--tasks", "fetal_head", "fetal_plane_cls", "IUGC", "--synthetic-per-task", "8",
         "--image-size", "32", "--batch-size", "2", "--steps", "6", "--eval-every", "3", "--log-every", "1",
         "--decoder-features", "8", "--warmup-steps", "1", "--checkpoint-every", "3", "--threads", "1",
         "--no-progress"]


COMMAND = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "recipes" / "unified.py"), *FLAGS]
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}


def two_processes(*args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV)
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


def workers(launcher: int) -> dict[int, int]:
    """``{rank: pid}`` of the torchrun launcher's worker processes (each runs in its own session)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ranks = [int(item[5:]) for item in environ if item.startswith(b"RANK=")]
        if parent == launcher and ranks:
            found[ranks[0]] = int(stat.parent.name)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker through /proc (Linux)")
def test_sigterm_to_one_process_stops_both_after_the_same_step_with_a_complete_checkpoint(tmp_path):
    """SIGTERM reaches the processes at different moments; they must agree on the step to stop
    after, or one waits forever in the next collective."""
    run = subprocess.Popen([*COMMAND, "--steps", "500", "--eval-every", "1000", "--output-dir", str(tmp_path)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=ENV)
    try:
        log = tmp_path / "log.jsonl"
        deadline = time.time() + 240
        while not (log.is_file() and sum(1 for line in log.read_text().splitlines() if '"loss"' in line) >= 3):
            assert run.poll() is None and time.time() < deadline, "the run did not start training"
            time.sleep(0.5)
        started = workers(run.pid)
        os.kill(started[1], signal.SIGTERM)  # rank 1 only
        output = run.communicate(timeout=120)[0]
    finally:
        if run.poll() is None:  # e.g. deadlocked: take the workers and the launcher down
            for pid in workers(run.pid).values():
                os.kill(pid, signal.SIGKILL)
            run.kill()
    assert run.returncode != 0, output[-2000:]  # not reported as a finished job
    checkpoint = tmp_path / "checkpoints" / (tmp_path / "checkpoints" / "latest").read_text()
    state = json.loads((checkpoint / "training_state.json").read_text())
    assert 3 <= state["counters"]["step"] < 500 and (checkpoint / "rng_1.safetensors").is_file()
    assert f"interrupted at step {state['counters']['step']}" in output
