"""The recipe study: which changes to study v2's best settings make the best M2DINO from the public
benchmark on this hardware (issue 23)?

Each factor (`recipe_study_parts/factors.py`) is a set of run-config overrides of the baseline (study
v2's unified MoE model at 100 % of the labels), trained through `m2dino.recipes.train` on a
`m2dino data build-public` root and scored with `m2dino evaluate`'s function on its val split (the
only split used to choose) and its test split (the one reported). Every factor is paired by seed
with its reference cell; Δ are given per task and in the mean normalised score, with the SD over
seeds, beside the constant predictor and wall time per cell.

    python benchmarks/recipe_study.py --root ~/.cache/m2dino-public --factors baseline bf16 --seeds 0 1 --jobs 2
    python benchmarks/recipe_study.py --root ... --finished-only      # report what has run, train nothing
    python benchmarks/recipe_study.py --report-only                    # re-render md/png from the json

Cells run in their own processes (``--jobs`` at a time, one torch thread each) under
``--output-dir`` (default runs/recipe_study); a finished cell (same signature) is reused, an
unfinished one continues from its latest checkpoint: the study runs in resumable parts. Run long parts
from an export of a fixed commit, stamped so that the cells record it:

    git archive HEAD | tar -x -C EXPORT && git rev-parse --short HEAD > EXPORT/COMMIT

Factor ``us_pretrained_all`` starts from a backbone pretrained on every public training image (and,
here, the TimTrack muscle scans), warm-started from the zoo backbone; it ran in resumable parts as

    python -m m2dino.recipes.pretrain --data fmc:ROOT/train MUSCLE_SCANS --held-out fmc:ROOT/val fmc:ROOT/test \
        --backbone mini --pretrained m2dino-mini-us-ccby --global-size 128 --local-size 64 --local-crops 4 \
        --prototypes 1024 --ibot-prototypes 1024 --head-hidden 512 --head-bottleneck 128 \
        --teacher-temp 0.04 0.07 --teacher-temp-warmup 300 --freeze-prototypes-steps 2400 \
        --collapse-patience 100000 --steps 2400 --batch-size 32 --lr 5e-4 --warmup-steps 100 --weight-decay 0.04 \
        --checkpoint-every 100 --seed 0 --threads 1 --output-dir runs/pretrain-all   # + --resume latest per part
    python benchmarks/recipe_study.py --root ROOT --factors us_pretrained_all \
        --us-backbone runs/pretrain-all/backbone.safetensors

Writes benchmarks/results/recipe_study.{md,json,png}; the markdown's interpretation (between the
``interpretation`` markers) is written by hand and kept when the report is rendered again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.report import command_line, portable_path  # noqa: E402
from recipe_study_parts.cell import STOPPED, collapsed, finished, git_commit, root_checksum, run_cell, signature  # noqa: E402
from recipe_study_parts.factors import BASELINE_STEPS, FACTORS, STUDY_TASKS, cell_config  # noqa: E402
from recipe_study_parts.report import write_report  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="a `m2dino data build-public` root (train/, val/, test/)")
    p.add_argument("--tasks", nargs="+", default=STUDY_TASKS)
    p.add_argument("--factors", nargs="+", default=["baseline", "bf16"], choices=list(FACTORS),
                   help="cells to run (each factor's reference cell is added)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=BASELINE_STEPS, help="the baseline's steps (factors may scale it)")
    p.add_argument("--jobs", type=int, default=1, help="cells trained at once, each on one torch thread")
    p.add_argument("--output-dir", default=str(REPO / "runs" / "recipe_study"))
    p.add_argument("--cache-dir", default=None, help="resize caches, one per input size (default OUTPUT/cache)")
    p.add_argument("--results-dir", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--us-backbone", default=None,
                   help="factor us_pretrained_all's start: a pretrained backbone .safetensors (see above)")
    p.add_argument("--finished-only", action="store_true", help="train nothing; report the finished cells")
    p.add_argument("--report-only", action="store_true", help="re-render the markdown and plot from the json")
    p.add_argument("--cell", nargs=2, metavar=("FACTOR", "SEED"), help=argparse.SUPPRESS)  # one cell, in-process
    args = p.parse_args(argv)
    if not args.report_only and args.root is None:
        p.error("--root is required (a `m2dino data build-public` root)")
    if args.steps < 1 or args.jobs < 1:
        p.error("--steps and --jobs must be at least 1")
    needing = [name for name in args.factors if FACTORS[name].needs_us_backbone]
    if args.us_backbone is None and needing:
        p.error(f"factor {', '.join(needing)} starts from a pretrained backbone file: give it with --us-backbone")
    if args.us_backbone is not None and not Path(args.us_backbone).is_file():
        p.error(f"--us-backbone {args.us_backbone}: no such file (expected the backbone.safetensors of a pretraining)")
    args.output_dir = Path(args.output_dir)
    args.cache_dir = args.cache_dir or str(args.output_dir / "cache")
    args.results_dir = Path(args.results_dir)
    return args


def planned_cells(args) -> list[tuple[str, int]]:
    """(factor, seed) of every cell to run: the chosen factors and their references, references first."""
    names: list[str] = []
    for name in args.factors:
        chain = []
        while name not in chain:
            chain.append(name)
            name = FACTORS[name].against
        names += [n for n in reversed(chain) if n not in names]
    return [(name, seed) for name in names for seed in args.seeds]


def cell_folder(args, factor: str, seed: int) -> Path:
    return args.output_dir / factor / f"seed{seed}"


def config_of(args, factor: str, seed: int) -> dict:
    return cell_config(FACTORS[factor], str(Path(args.root).resolve()), list(args.tasks), args.steps, seed,
                       args.cache_dir, str(cell_folder(args, factor, seed) / "run"),
                       None if args.us_backbone is None else str(Path(args.us_backbone).resolve()))


def run_cells(args, cells: list[tuple[str, int]], argv: Sequence[str]) -> None:
    """Each unfinished cell in its own process, ``--jobs`` at a time; a failed cell stops the study."""
    checksum = root_checksum(Path(args.root))
    todo = [c for c in cells if finished(cell_folder(args, *c), signature(config_of(args, *c), checksum)) is None]
    print(f"{len(cells)} cells, {len(cells) - len(todo)} finished, {len(todo)} to run, {args.jobs} at a time",
          flush=True)
    running: dict[tuple[str, int], tuple[subprocess.Popen, float]] = {}
    started = time.time()
    while todo or running:
        while todo and len(running) < args.jobs:
            factor, seed = todo.pop(0)
            folder = cell_folder(args, factor, seed)
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "log.txt", "a") as log:
                process = subprocess.Popen([sys.executable, __file__, *argv, "--cell", factor, str(seed)],
                                           stdout=log, stderr=subprocess.STDOUT,
                                           env={**os.environ, "OMP_NUM_THREADS": "1"})
            running[(factor, seed)] = (process, time.time())
            print(f"started {factor} seed {seed} (log: {folder / 'log.txt'})", flush=True)
        time.sleep(5)
        for cell, (process, since) in list(running.items()):
            if process.poll() is None:
                continue
            del running[cell]
            if process.returncode != 0:
                for other, _ in running.values():
                    other.terminate()  # SIGTERM: the trainer checkpoints and the cell resumes next time
                    other.wait()
                if process.returncode == STOPPED:
                    raise SystemExit(f"cell {cell[0]} seed {cell[1]} was stopped; the running cells checkpointed: "
                                     "run the same command again to continue")
                raise SystemExit(f"cell {cell[0]} seed {cell[1]} failed (exit {process.returncode}); "
                                 f"see {cell_folder(args, *cell) / 'log.txt'}")
            print(f"finished {cell[0]} seed {cell[1]} in {(time.time() - since) / 60:.1f} min "
                  f"[{(time.time() - started) / 60:.1f} min]", flush=True)


def constant_scores(args) -> dict:
    """The constant predictor on the test split (fitted on the training split at 128 px), cached."""
    from m2dino.evaluation import evaluate_constant
    from m2dino.training import error_scales, load_training_data, normalised_task_scores
    from recipe_study_parts.cell import headline

    root = Path(args.root)
    cache = args.output_dir / "constant" / "constant.json"
    key = {"data": root_checksum(root), "tasks": list(args.tasks)}
    if cache.is_file() and json.loads(cache.read_text()).get("key") == key:
        return json.loads(cache.read_text())
    data = load_training_data(str(root / "train"), list(args.tasks), 128, 0, val_data=str(root / "val"))
    metrics = evaluate_constant(data.train, root / "test", cache.parent, list(args.tasks), (128, 128),
                                progress=False).metrics
    record = {"key": key, "scores": normalised_task_scores(metrics, error_scales(data.val)),
              "headline": headline(metrics, list(args.tasks))}
    cache.write_text(json.dumps(record, indent=1) + "\n")
    return record


def collect(args, cells: list[tuple[str, int]]) -> tuple[list[dict], list[str]]:
    checksum = root_checksum(Path(args.root))
    records, missing = [], []
    for factor, seed in cells:
        record = finished(cell_folder(args, factor, seed), signature(config_of(args, factor, seed), checksum))
        if record is None:
            missing.append(f"{factor} seed {seed}")
        else:
            # The collapse flags are derived here from the cell's kept test metrics (the record does not store
            # them), so a corrected rule reaches finished cells.
            metrics = json.loads((cell_folder(args, factor, seed) / "test" / "metrics.json").read_text())
            record["test"]["collapsed"] = collapsed(metrics, list(args.tasks))
            records.append({"factor": factor, "seed": seed, **{k: v for k, v in record.items() if k != "signature"},
                            "config": _with_root_placeholder(record["signature"]["config"], args.root)})
    return records, missing


def _with_root_placeholder(config: dict, root: str) -> dict:
    """The config as the report shows it: the data root (e.g. in the cps pool) written ``{root}``, as in
    the factor's overrides, so that the committed report holds no path of the machine that ran it."""
    return json.loads(json.dumps(config).replace(json.dumps(str(Path(root).resolve()))[1:-1], "{root}"))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    json_path = args.results_dir / "recipe_study.json"
    if args.report_only:
        if not json_path.is_file():
            raise SystemExit(f"--report-only: {json_path} not found; run the study first")
        print(write_report(json.loads(json_path.read_text()), args.results_dir))
        return
    if args.cell:
        import torch

        torch.set_num_threads(1)
        factor, seed = args.cell[0], int(args.cell[1])
        record = run_cell(config_of(args, factor, seed), Path(args.root).resolve(), cell_folder(args, factor, seed),
                          git_commit(REPO))
        print(json.dumps({k: record[k] for k in ("train_seconds", "images_per_second")}))
        return
    cells = planned_cells(args)
    if not args.finished_only:
        run_cells(args, cells, [a for a in argv if a != "--finished-only"])
    records, missing = collect(args, cells)
    import torch

    study = {
        "command": command_line(["benchmarks/recipe_study.py", *argv]).strip(),
        "commit": git_commit(REPO),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": 1,
                    "jobs": None if args.finished_only else args.jobs},
        "root": portable_path(Path(args.root)), "tasks": list(args.tasks), "steps": args.steps,
        "factors": {name: {"question": FACTORS[name].question, "overrides": FACTORS[name].overrides,
                           "against": FACTORS[name].against, "steps_scale": FACTORS[name].steps_scale}
                    for name in dict.fromkeys(f for f, _ in cells)},
        "constant": constant_scores(args),
        "cells": records,
        "not_yet_run": missing,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(study, indent=1) + "\n")
    print(write_report(study, args.results_dir))


if __name__ == "__main__":
    main()
