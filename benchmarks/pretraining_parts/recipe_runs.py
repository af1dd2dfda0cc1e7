"""(b) frozen backbone + segmentation head and (c) full fine-tuning on 10 % of HC18's labels: each a run
of the unified recipe, scored by the recipe's own evaluation of its final model on the test split (no
checkpoint selection). Runs go through a small pool of subprocesses (1 torch thread, 0 workers each)."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .cells import CellStore


@dataclass(frozen=True)
class RecipeCell:
    """One comparison of the table: a task trained by the unified recipe with fixed flags."""

    key: str
    task: str
    freeze_backbone: bool
    data_fraction: float
    steps: int

    def flags(self) -> list[str]:
        return ((["--freeze-backbone"] if self.freeze_backbone else [])
                + (["--data-fraction", str(self.data_fraction)] if self.data_fraction < 1 else [])
                + ["--steps", str(self.steps)])


@dataclass
class Job:
    name: str
    cell: RecipeCell
    command: list[str]
    output_dir: Path
    settings: dict


def recipe_command(cell: RecipeCell, weights: str, seed: int, root: Path, eval_split: str, output_dir: Path,
                   cache_dir: Path, image_size: int) -> list[str]:
    """The unified recipe for one cell: ``weights`` is the pretrained backbone or 'none' (random init from
    ``--seed``, the same seed-controlled init as the probes)."""
    return ["python", "-m", "m2dino.recipes.unified", "--data", f"{root}/train", "--val-data", f"{root}/{eval_split}",
            "--tasks", cell.task, "--image-size", str(image_size), "--moe-blocks", "", *cell.flags(),
            "--eval-every", str(cell.steps + 1), "--log-every", "50", "--pretrained", weights, "--seed", str(seed),
            "--threads", "1", "--num-workers", "0", "--cache-dir", str(cache_dir), "--no-progress",
            "--output-dir", str(output_dir), "--overwrite"]


def final_dsc(output_dir: Path, task: str) -> dict:
    """The task's DSC (mean over foreground classes, as the scorer reports it) and per-class DSC from the
    run's ``metrics.json`` (the final model, evaluated after the last step)."""
    metrics = json.loads((output_dir / "metrics.json").read_text())
    result = metrics["segmentation"][task]
    per_class = {c: v["DSC"] for c, v in result.get("per_class", {}).items()}
    return {"dsc": result["DSC"], "per_class_dsc": per_class, "eval_images": result.get("num_samples")}


def run_pool(jobs: list[Job], store: CellStore, parallel: int, log_dir: Path) -> list[str]:
    """Run ``jobs`` with at most ``parallel`` at a time; each finished one is stored as its cell at once.
    Returns the names of the jobs that failed (their logs are in ``log_dir``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(jobs), {}, []
    while pending or running:
        while pending and len(running) < parallel:
            job = pending.pop(0)
            log = (log_dir / f"{job.name}.log").open("w")
            print(f"start {job.name}: {shlex.join(job.command)}", flush=True)
            process = subprocess.Popen([sys.executable, *job.command[1:]], stdout=log, stderr=subprocess.STDOUT)
            running[job.name] = (job, process, log, time.time())
        time.sleep(2)
        for name, (job, process, log, started) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[name]
            seconds = time.time() - started
            if process.returncode != 0:
                failed.append(name)
                print(f"FAILED {name} (exit {process.returncode}, {seconds:.0f} s): see {log_dir / name}.log",
                      flush=True)
                continue
            values = final_dsc(job.output_dir, job.cell.task)
            store.put(name, job.settings, {**values, "seconds": seconds, "command": shlex.join(job.command)})
            print(f"done {name}: DSC {values['dsc']:.4f} ({seconds:.0f} s)", flush=True)
    return failed
