"""One cell of the recipe study: train a run config through `m2dino.recipes.train` (the path a user's
`m2dino train` takes), then score the trained model on the root's val split (for choosing) and test
split (for reporting) with `m2dino evaluate`'s own function.

A cell's record, ``cell.json`` in its folder, holds its signature (the run config without paths that
do not change the result, and the data root's datasheet checksum): a cell whose record matches is
finished and reused. A cell stopped half-way (the session ended) continues from its latest
checkpoint (``checkpoint_every`` is a tenth of its steps), so the study runs in resumable parts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

RECORD = "cell.json"
STOPPED = 143  # exit status of a cell stopped by a request, as the trainer's own commands use


def root_checksum(root: Path) -> str:
    """What identifies the data: the build-public datasheet (its counts, sources and splits)."""
    sheet = root / "datasheet.json"
    if not sheet.is_file():
        raise SystemExit(f"benchmarks/recipe_study.py: {sheet} not found; --root must be a folder that "
                         "`m2dino data build-public` wrote (train/, val/, test/ and datasheet.json)")
    return file_digest(sheet)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def signature(config: dict, data_checksum: str) -> dict:
    """Everything that decides a cell's result: the config less its folders, the thread count and
    the loader settings (none of which change what is trained), plus the data. A pretrained backbone
    given as a file counts by its content: a pretraining continued into the same file makes a new cell."""
    kept = copy.deepcopy(config)
    pretrained = kept["model"].get("pretrained")
    if isinstance(pretrained, str) and Path(pretrained).is_file():
        kept["model"]["pretrained"] = f"file sha256 {file_digest(Path(pretrained))}"
    kept.pop("output_dir", None)
    kept.pop("threads", None)
    for name in ("cache_dir", "num_workers", "sources", "val"):
        kept["data"].pop(name, None)
    kept["train"].pop("checkpoint_every", None)
    return {"config": kept, "data": data_checksum}


def finished(folder: Path, wanted: dict) -> dict | None:
    record = folder / RECORD
    if not record.is_file():
        return None
    saved = json.loads(record.read_text())
    return saved if saved.get("signature") == wanted else None


def git_commit(repo: Path) -> str:
    """The commit the cells run: git's, or, in a `git archive` export (no .git), its ``COMMIT`` file."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        stamp = repo / "COMMIT"
        return stamp.read_text().strip() if stamp.is_file() else "unknown"


def run_cell(config: dict, root: Path, folder: Path, commit: str) -> dict:
    """Train (or continue) the cell in ``folder`` and score it -> its record (also written to cell.json)."""
    from m2dino import M2DINO
    from m2dino.evaluation import evaluate_fmc_root
    from m2dino.recipes import RunConfig, train
    from m2dino.training import error_scales, load_training_data, normalised_task_scores

    wanted = signature(config, root_checksum(root))
    done = finished(folder, wanted)
    if done is not None:
        return done
    run = RunConfig.from_dict({**config, "output_dir": str(folder / "run")}, f"recipe study cell {folder.name}")
    started = time.time()
    outcome = train(run, resume="latest", overwrite=True, progress=False)
    if outcome.interrupted:  # a stop request (SIGTERM): the trainer wrote a checkpoint
        print(f"{folder}: stopped; run the study again to continue it from its latest checkpoint", flush=True)
        raise SystemExit(STOPPED)
    train_seconds = time.time() - started
    result = outcome.runs[0].result
    model = M2DINO.from_pretrained(result.output_dir)
    tasks = list(run.data.tasks)
    started = time.time()
    test = evaluate_fmc_root(model, root / "test", folder / "test", tasks, progress=False).metrics
    val_samples = load_training_data(str(root / "train"), tasks, run.model.image_size, run.train.seed,
                                     val_data=str(root / "val")).val
    scales = error_scales(val_samples)
    record = {
        "signature": wanted, "commit": commit, "steps": result.steps_done,
        "nonfinite_steps": result.nonfinite_steps,
        "train_seconds": round(train_seconds, 1), "eval_seconds": round(time.time() - started, 1),
        "images_per_second": round(result.steps_done * run.train.batch_size / train_seconds, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "val": {"scores": result.scores, "headline": headline(result.metrics, tasks)},
        "test": {"scores": normalised_task_scores(test, scales), "headline": headline(test, tasks)},
    }
    shutil.rmtree(folder / "run" / "checkpoints", ignore_errors=True)  # optimizer states: not needed now
    shutil.rmtree(folder / "test" / "submission", ignore_errors=True)   # masks: metrics.json keeps the numbers
    (folder / RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return record


def task_metrics(metrics: dict, task: str) -> dict:
    """``task``'s entry of a metrics.json dict, whichever kind's section holds it."""
    for section, tasks in metrics.items():
        if section != "summary" and task in tasks:
            return tasks[task]
    return {}


def headline(metrics: dict, tasks: list[str]) -> dict[str, dict[str, float]]:
    """Task -> its headline metrics (the label kind's: DSC and HD, accuracy and F1, IoU) as scored."""
    from m2dino import get_task

    out = {}
    for task in tasks:
        entry = task_metrics(metrics, task)
        out[task] = {m: entry[m] for m in get_task(task).label_kind.headline_metrics if m in entry}
    return out


def collapsed(metrics: dict, tasks: list[str]) -> dict[str, bool]:
    """Classification task -> whether the model collapsed to one class on the test images: at most one
    class has a non-zero F1 (a model that predicts one class for every image scores F1 = 0 on every
    other class)."""
    out = {}
    for task in tasks:
        per_class = task_metrics(metrics, task).get("per_class") or {}
        f1 = [c["F1"] for c in per_class.values() if "F1" in c]  # segmentation's classes carry DSC and HD
        if f1:
            out[task] = sum(1 for value in f1 if value > 0) <= 1
    return out
