"""The pretraining stage: `m2dino.recipes.pretrain` on the train split of the public root, skipped when
its backbone exists and resumed (``--resume latest``) when only checkpoints do; its wall time from the
log; the pool of images it saw, per dataset."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

# The benchmark's pretraining run: the mini backbone at 128/64 px crops with heads sized for it,
# 1,600 steps of 32 images (about 40 minutes on 2 CPU cores). The 1,024 prototypes stay fixed for the
# whole run: with trainable ones the DINO head went uniform within 100 steps in two pilots (128 and
# 1,024 prototypes), while with more fixed prototypes than bottleneck dimensions (128) no uniform answer
# exists and the DINO loss fell below ln K. A collapse is reported (log, card), not a reason to stop:
# the benchmark measures what the run gives.
PRETRAIN_FLAGS = ["--global-size", "128", "--local-size", "64", "--local-crops", "4", "--prototypes", "1024",
                  "--ibot-prototypes", "1024", "--head-hidden", "512", "--head-bottleneck", "128",
                  "--batch-size", "32", "--steps", "1600", "--warmup-steps", "100", "--checkpoint-every", "200",
                  "--log-every", "20", "--freeze-prototypes-steps", "1600", "--collapse-patience", "100000"]
# --quick: the same run shrunk to a few steps (a smoke test of the stage, not a pretrained backbone).
QUICK_FLAGS = {"--batch-size": "4", "--steps": "4", "--warmup-steps": "2", "--checkpoint-every": "2",
               "--log-every": "1", "--local-crops": "2"}


def pretrain_command(root: Path, output_dir: Path, quick: bool = False, threads: int = 2) -> list[str]:
    flags = list(PRETRAIN_FLAGS)
    if quick:
        flags = [QUICK_FLAGS.get(flags[i - 1], f) if i % 2 else f for i, f in enumerate(flags)]
    return ["python", "-m", "m2dino.recipes.pretrain", "--data", f"fmc:{root}/train",
            "--held-out", f"fmc:{root}/val", f"fmc:{root}/test", *flags, "--output-dir", str(output_dir),
            "--no-progress", "--threads", str(threads)]


def ensure_backbone(command: list[str], output_dir: Path) -> tuple[Path, str]:
    """The pretrained backbone, running (or resuming) the pretraining first where needed; and what was done."""
    backbone = output_dir / "backbone.safetensors"
    if backbone.is_file():
        return backbone, "skipped, its backbone was already there"
    checkpoints = output_dir / "checkpoints"
    resume = checkpoints.is_dir() and any(checkpoints.iterdir())
    run = [sys.executable, *command[1:]] + (["--resume", "latest"] if resume else [])
    print(f"pretraining{' (resumed)' if resume else ''}: {shlex.join(command)}", flush=True)
    subprocess.run(run, check=True)
    if not backbone.is_file():
        raise RuntimeError(f"the pretraining run ended without writing {backbone}; see {output_dir / 'log.jsonl'}")
    return backbone, "resumed from its latest checkpoint" if resume else "ran"


def wall_time(log_path: Path) -> dict:
    """Seconds between the first and last logged step (the log's ``time`` fields) and the steps between
    them; ``estimated_s`` scales that to every step (the first log line comes after ``log_every`` steps)."""
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [r for r in records if "step" in r and "time" in r and "loss" in r]
    if len(steps) < 2:
        raise ValueError(f"{log_path}: fewer than two logged steps with a time; expected the pretrain log")
    first, last = steps[0], steps[-1]
    seconds = last["time"] - first["time"]
    per_step = seconds / (last["step"] - first["step"])
    final = {k: v for k, v in last.items() if k.endswith("loss")}
    return {"first_step": first["step"], "last_step": last["step"], "seconds": seconds, "per_step_s": per_step,
            "estimated_s": per_step * last["step"], "final_losses": final, "loss_trend": loss_trend(steps),
            "collapse_records": sum(1 for r in records if r.get("teacher_collapse"))}


def loss_trend(steps: list[dict], window: int = 5) -> dict:
    """Each loss's mean over the first and the last ``window`` logged steps after the first fifth of the
    run (past the warm-ups), to say whether it fell while the schedules were settled."""
    settled = [r for r in steps if r["step"] > steps[-1]["step"] / 5]
    early, late = settled[:window], settled[-window:]
    names = [k for k in steps[-1] if k.endswith("loss")]
    return {name: {"from_step": early[0]["step"], "early": sum(r[name] for r in early) / len(early),
                   "late": sum(r[name] for r in late) / len(late)} for name in names}


def pool_counts(root: Path) -> dict:
    """The pretraining pool (train split, labels ignored) per dataset: the image files the recipe reads
    (an FMC root keeps one copy per task folder, and the recipe counts distinct files) and the distinct
    images among them (by bytes)."""
    from m2dino.data import UnlabeledSource, read_fmc_index

    dataset_of = {str(r.image_file): r.meta.get("dataset", "?") for r in read_fmc_index(root / "train")}
    files = UnlabeledSource.from_fmc(root / "train").sources
    per_files, per_distinct, seen = Counter(), Counter(), set()
    for file in files:
        dataset = dataset_of.get(file, "?")
        per_files[dataset] += 1
        digest = hashlib.sha1(Path(file).read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            per_distinct[dataset] += 1
    return {"files": sum(per_files.values()), "distinct": len(seen),
            "per_dataset": {d: {"files": per_files[d], "distinct": per_distinct[d]} for d in sorted(per_files)}}
