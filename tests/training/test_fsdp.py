"""FSDP on two CPU processes (gloo), as `test_distributed.py` starts them (torchrun, ACCELERATE_USE_CPU):
the loss module trains in shards, checkpoints with the engine's `save_training_state` and resumes to
the same weights as a run straight through (`fsdp_worker.py` is one process)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}


def two_processes(output: Path, *args: str) -> list[dict]:
    output.mkdir(parents=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(HERE / "fsdp_worker.py"), str(output), *args],
                         capture_output=True, text=True, timeout=300, cwd=HERE.parents[1], env=ENV)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [json.loads((output / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_shards_the_model_and_resumes_exactly(tmp_path):
    straight = two_processes(tmp_path / "straight", "4", "3")  # 4 steps, a checkpoint after step 3
    total = straight[0]["parameters"]
    assert straight[0]["local_parameters"] + straight[1]["local_parameters"] == total  # each holds its shard
    assert max(r["local_parameters"] for r in straight) < 0.51 * total
    checkpoint = tmp_path / "straight" / "checkpoints" / "step_00000003"
    assert json.loads((checkpoint / "training_state.json").read_text())["storage"] == "accelerate"
    assert (checkpoint / "pytorch_model_fsdp_0").is_dir()  # the model in shards, one file per process

    resumed = two_processes(tmp_path / "resumed", "4", "0", str(checkpoint))  # step 4 again
    assert [r["losses"] for r in resumed] == [r["losses"][3:] for r in straight]
    a, b = (load_file(tmp_path / run / "weights.safetensors") for run in ("straight", "resumed"))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) == 0
