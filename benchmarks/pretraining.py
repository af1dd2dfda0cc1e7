"""Ultrasound self-supervised pretraining against random init (issue 12, item 3).

Pretrains the `mini` backbone with the `pretrain` recipe on the train split of the public benchmark root
(8 real datasets, val and test held out) for about 40 minutes on 2 CPU cores, then compares it with
random init at equal downstream budgets, over several seeds:

(a) frozen backbone + linear probe: African planes and POCUS lung 3-class accuracy and macro F1;
(b) frozen backbone + segmentation head: HC18 fetal head DSC and PSFHS DSC;
(c) full fine-tuning on 10 % of HC18's labels: fetal head DSC;

plus the first three PCA components of the patch features on 4 scans, random init against pretrained.
Every cell is stored as its own JSON under ``--work-dir`` (cells/), so a rerun skips what is done; the
pretraining stage is skipped when its backbone exists and resumed when only its checkpoints do.

    python benchmarks/pretraining.py                    # ~40 min pretraining + ~50 min downstream, 2 cores
    python benchmarks/pretraining.py --quick --backbone /tmp/probe/backbone.safetensors   # smoke run
    python benchmarks/pretraining.py --rerender         # rewrite results/pretraining.md from the .json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from harness.machine import cpu_name
from harness.report import (
    add_output_arguments,
    command_line,
    elided_path,
    output_paths,
    portable_command,
    portable_path,
    read_result,
    write_result,
)
from m2dino.evaluation import (
    PROBE_CS,
    PROBE_TRAIN_FRACTION,
    build_backbone_model,
    extract,
    fit_probe,
    load_probe_data,
)
from pretraining_parts.cells import CellStore
from pretraining_parts.pretrain_stage import (
    ensure_backbone,
    pool_counts,
    pretrain_command,
    wall_time,
)
from pretraining_parts.recipe_runs import Job, RecipeCell, recipe_command, run_pool
from pretraining_parts.report import INITS, comparison_row, render, table

REPO = Path(__file__).resolve().parents[1]
PROBE_TASKS = {"fetal_plane_cls": "African planes", "lung_disease_3cls": "POCUS lung 3-class"}
# One scan of each of 4 datasets, from their test splits (never pretrained on).
PCA_SCANS = [("HC18", "fetal_head"), ("PSFHS", "head_symphysis_multi"), ("POCUS lung", "lung_disease_3cls"),
             ("BUSI", "breast_3cls")]
NOTES = [
    ("Scale: a 4-block, width-128 ViT (0.9M parameters) pretrained for under an hour on 2 CPU cores "
     "(1,600 steps of 32 images at 128/64 px, about 5 passes over the pool) is a test of the recipe on real scans, "
     "not an ultrasound foundation model: DINOv3's backbones come from a 7B-parameter ViT trained on 1.7 billion "
     "images, and ultrasound foundation models (USFM, EchoCare) use far larger models and data. The numbers say "
     "whether the objective moves a small backbone in a useful direction, not what a large pretrained "
     "ultrasound backbone would reach."),
    ("In-domain: the pretraining pool holds the (unlabelled) train images of every downstream task, as the recipe "
     "is meant to be used (pretrain on your own scans); it is not a test of transfer to datasets never seen."),
    ("A frozen random ViT is not a weak baseline for segmentation: its patch tokens are random projections of the "
     "16×16-pixel patches, which keep most of their information, and the DPT head is a trainable convolutional "
     "decoder over 4 levels of them (see the frozen random-init DSCs in the table). Frozen segmentation thus "
     "tests little beyond what a learned decoder extracts; the linear probes, where only a linear map is learned "
     "on pooled features, are the sharper test of the representation, and the fine-tuning cell (c) of whether "
     "the pretrained weights are a better starting point."),
    ("Budgets are short and fixed (no tuning of steps or learning rates for either init); longer downstream "
     "training could narrow or widen the gaps. The seg scores are of the final model on the test split, with no "
     "checkpoint selection; the test sets are small (HC18 105, PSFHS 136, African planes 211, POCUS 346 images)."),
    ("Seeds: few per cell (see the protocol). The 2-SD rule is a coarse screen for a difference larger than seed "
     "noise, not a significance test; it ignores that both inits share each seed's data, which makes it "
     "conservative (a paired comparison would resolve smaller gaps)."),
    ("Not compared: continuing the public DINOv3 weights (not downloadable on this machine), Gram anchoring "
     "(`--gram-weight 0` here), other image sizes or backbones."),
]


def sha1(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def git_state() -> dict:
    """The commit the benchmark ran from and whether m2dino/ had uncommitted changes; both None when run
    from an exported copy (``git archive``), which is not a git work tree. ``source``: the folder it ran
    from (elided: the repository's own path is this machine's)."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    head = git("rev-parse", "--show-toplevel", "HEAD")
    lines = head.stdout.split()
    if head.returncode != 0 or Path(lines[0]).resolve() != REPO:
        return {"commit": None, "dirty": None, "source": elided_path(REPO)}
    return {"commit": lines[1], "dirty": bool(git("status", "--porcelain", "--", "m2dino").stdout.strip()),
            "source": elided_path(REPO)}


# ----------------------------------------------------------------------------------- (a) probes
def probe_settings(args, task: str, init: str, seed: int, digest: str) -> dict:
    return {"kind": "probe", "task": task, "init": init, "seed": seed, "image_size": args.image_size,
            "backbone_sha1": digest if init == "pretrained" else None, "limit": args.probe_limit,
            "cs": PROBE_CS, "fraction": PROBE_TRAIN_FRACTION}


def run_probes(args, store: CellStore, weights: Path, digest: str) -> None:
    for task in PROBE_TASKS:
        todo = [(init, seed) for seed in args.probe_seeds for init in INITS
                if store.get(f"probe-{task}-{init}-s{seed}", probe_settings(args, task, init, seed, digest)) is None]
        if not todo:
            continue
        pretrained = build_backbone_model(task, str(weights), 0, args.image_size)
        data = load_probe_data(args.root, task, pretrained.preprocess, args.probe_limit)
        features = {"pretrained": extract(pretrained, data)} if any(i == "pretrained" for i, _ in todo) else {}
        for init, seed in todo:
            feats = features["pretrained"] if init == "pretrained" else \
                extract(build_backbone_model(task, None, seed, args.image_size), data)
            values = fit_probe(feats, data.labels, seed)
            store.put(f"probe-{task}-{init}-s{seed}", probe_settings(args, task, init, seed, digest), values)
            print(f"probe {task} {init} s{seed}: accuracy {values['accuracy']:.3f}, macro F1 "
                  f"{values['macro_f1']:.3f} (C {values['C']})", flush=True)


# -------------------------------------------------------------------------- (b), (c) recipe runs
def recipe_cells(args) -> list[tuple[str, str, RecipeCell]]:
    """(section, label, cell) of the table's recipe rows."""
    return [("(b)", "HC18 fetal head, frozen", RecipeCell("frozen-fetal_head", "fetal_head", True, 1.0,
                                                            args.frozen_steps)),
            ("(b)", "PSFHS, frozen", RecipeCell("frozen-head_symphysis_multi", "head_symphysis_multi", True, 1.0,
                                                args.frozen_steps)),
            ("(c)", "HC18 fetal head, 10 % labels, fine-tuned",
             RecipeCell("finetune10-fetal_head", "fetal_head", False, 0.1, args.finetune_steps))]


def recipe_settings(args, cell: RecipeCell, init: str, seed: int, digest: str) -> dict:
    return {"kind": "recipe", "cell": cell.key, "task": cell.task, "init": init, "seed": seed, "steps": cell.steps,
            "freeze_backbone": cell.freeze_backbone, "data_fraction": cell.data_fraction,
            "image_size": args.image_size, "eval_split": args.eval_split,
            "backbone_sha1": digest if init == "pretrained" else None}


def run_recipes(args, store: CellStore, weights: Path, digest: str) -> list[str]:
    jobs = []
    for seed in args.seeds:  # seed-major: an interrupted run leaves whole seeds done
        for _, _, cell in recipe_cells(args):
            for init in INITS:
                name = f"{cell.key}-{init}-s{seed}"
                settings = recipe_settings(args, cell, init, seed, digest)
                if store.get(name, settings) is not None:
                    continue
                output_dir = args.work_dir / "runs" / name
                command = recipe_command(cell, str(weights) if init == "pretrained" else "none", seed, args.root,
                                         args.eval_split, output_dir, args.work_dir / "cache", args.image_size)
                jobs.append(Job(name, cell, command, output_dir, settings))
    if not jobs:
        return []
    tasks = sorted({c.task for _, _, c in recipe_cells(args)})
    cache = [sys.executable, "-m", "m2dino.cli.main", "data", "cache", str(args.root / "train"), "--size",
             str(args.image_size), "--tasks", *tasks, "--cache-dir", str(args.work_dir / "cache"),
             "--workers", str(args.jobs)]
    subprocess.run(cache, check=True)  # built once here, so that parallel runs only read it
    return run_pool(jobs, store, args.jobs, args.work_dir / "logs")


# ------------------------------------------------------------------------------------- picture
def make_pca(args, weights: Path, out_path: Path) -> dict:
    from m2dino.data import read_fmc_index
    from pretraining_parts.pca import pca_figure

    files = [(f"{label} (test)", read_fmc_index(args.root / "test", [task])[0].image_file)
             for label, task in PCA_SCANS]
    models = {"random init (seed 0)": build_backbone_model("fetal_head", None, 0, args.pca_size),
              "pretrained": build_backbone_model("fetal_head", str(weights), 0, args.pca_size)}
    pca_figure([(label, str(file)) for label, file in files], models, "fetal_head", out_path)
    # The scans are recorded relative to the public root (the index resolves its paths, so the root is too).
    scans = [(label, file.relative_to(args.root.resolve()).as_posix()) for label, file in files]
    return {"file": out_path.name, "image_size": args.pca_size, "scans": scans, "bytes": out_path.stat().st_size}


# -------------------------------------------------------------------------------------- result
def collect(args, store: CellStore, digest: str) -> tuple[list[dict], list[str], dict]:
    rows, missing, seconds = [], [], {}
    for task, label in PROBE_TASKS.items():
        per_init = {init: [] for init in INITS}
        for init in INITS:
            for seed in args.probe_seeds:
                cell = store.get(f"probe-{task}-{init}-s{seed}", probe_settings(args, task, init, seed, digest))
                if cell is None:
                    missing.append(f"(a) {label}, {init}, seed {seed}")
                else:
                    per_init[init].append(cell)
        for metric, key in (("accuracy", "accuracy"), ("macro F1", "macro_f1")):
            rows.append(comparison_row("(a)", f"{label}, linear probe", metric,
                                       {i: [c[key] for c in cs] for i, cs in per_init.items()}, frozen=True))
    for section, label, cell in recipe_cells(args):
        per_init, times = {init: [] for init in INITS}, []
        for init in INITS:
            for seed in args.seeds:
                stored = store.get(f"{cell.key}-{init}-s{seed}", recipe_settings(args, cell, init, seed, digest))
                if stored is None:
                    missing.append(f"{section} {label}, {init}, seed {seed}")
                else:
                    per_init[init].append(stored["dsc"])
                    times.append(stored["seconds"])
        rows.append(comparison_row(section, label, "DSC", per_init, frozen=cell.freeze_backbone))
        if times:
            seconds[label] = statistics.fmean(times)
    return rows, missing, seconds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("/tmp/m2dino-public"),
                        help="folder of the public benchmark's train/val/test FMC roots (m2dino data build-public)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="pretraining run, recipe runs and per-cell JSONs (default: runs/bench_pretraining; "
                             "--quick: a temporary folder)")
    parser.add_argument("--backbone", type=Path, default=None,
                        help="use this pretrained backbone instead of running the pretraining stage (development)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the recipe cells (b), (c)")
    parser.add_argument("--probe-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of (a)")
    parser.add_argument("--frozen-steps", type=int, default=1200, help="steps of each (b) run")
    parser.add_argument("--finetune-steps", type=int, default=800, help="steps of each (c) run")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--pca-size", type=int, default=256, help="input size of the PCA picture")
    parser.add_argument("--eval-split", default="test", choices=["val", "test"], help="split scoring (b) and (c)")
    parser.add_argument("--jobs", type=int, default=2, help="recipe runs at a time (1 thread each)")
    parser.add_argument("--parts", nargs="+", choices=["probe", "pca", "recipe"], default=["probe", "pca", "recipe"],
                        help="measure only these (stored cells of the others still enter the report)")
    parser.add_argument("--note", action="append", default=[], help="a line for 'what these numbers do not show'")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 4-step pretraining, 2 seeds, 4-step recipe runs, 40 images per probe split")
    add_output_arguments(parser, "pretraining")
    args = parser.parse_args(argv)
    args.probe_limit = None
    if args.quick:
        args.seeds, args.probe_seeds = args.seeds[:2], args.probe_seeds[:2]
        args.frozen_steps = args.finetune_steps = 4
        args.probe_limit = 40
    if args.work_dir is None:
        args.work_dir = Path(tempfile.gettempdir()) / "m2dino_pretraining_quick_work" if args.quick \
            else REPO / "runs" / "bench_pretraining"
    args.work_dir = relative_to_cwd(args.work_dir)  # so that the report's commands read as one would type them
    return args


def relative_to_cwd(path: Path) -> Path:
    try:
        return path.absolute().relative_to(Path.cwd())
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    md_path, json_path = output_paths(args)
    if args.rerender:
        result = read_result(json_path)
        write_result(md_path, json_path, render(result), result)
        return
    torch.set_num_threads(args.jobs)  # the probes and the picture run alone, before the recipe runs
    store = CellStore(args.work_dir / "cells")
    command = pretrain_command(args.root, args.work_dir / "pretrain", quick=args.quick)
    if args.backbone is not None:
        weights, status = args.backbone, f"not run here: `--backbone {args.backbone}` given"
    else:
        weights, status = ensure_backbone(command, args.work_dir / "pretrain")
    digest = sha1(weights)
    log = weights.parent / "log.jsonl"
    config = weights.parent / "pretrain_config.json"
    pretraining = {"command": portable_command(command), "status": status, "backbone": portable_path(weights),
                   "sha1": digest,
                   "wall": wall_time(log) if log.is_file() else None,
                   "prototypes": json.loads(config.read_text())["loss"]["prototypes"] if config.is_file() else None}
    pool = store.get("pool", {"root": str(args.root)}) or store.put("pool", {"root": str(args.root)},
                                                                     pool_counts(args.root))
    # The counts without the store's key, which holds this machine's path of the root (settings has it portable).
    pretraining["pool"] = {k: v for k, v in pool.items() if k not in ("cell", "settings")}
    if "probe" in args.parts:
        run_probes(args, store, weights, digest)
    pca = make_pca(args, weights, md_path.parent / f"{args.name}_pca.png") if "pca" in args.parts else None
    failed = run_recipes(args, store, weights, digest) if "recipe" in args.parts else []
    rows, missing, seconds = collect(args, store, digest)
    previous = read_result(json_path) if json_path.is_file() and pca is None else {}
    result = {"command": command_line(), "git": git_state(),
              "machine": {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)),
                          "python": platform.python_version(), "torch": torch.__version__},
              "pretraining": pretraining,
              "settings": {"root": portable_path(args.root), "image_size": args.image_size, "seeds": args.seeds,
                           "probe_seeds": args.probe_seeds, "frozen_steps": args.frozen_steps,
                           "finetune_steps": args.finetune_steps, "eval_split": args.eval_split, "jobs": args.jobs,
                           "probe_cs": list(PROBE_CS), "probe_train_fraction": PROBE_TRAIN_FRACTION,
                           "probe_limit": args.probe_limit, "quick": args.quick},
              "rows": rows, "run_seconds": seconds, "pca": pca or previous.get("pca"),
              "missing": missing + [f"recipe run {n} failed (see {portable_path(args.work_dir / 'logs')})"
                                    for n in failed],
              "notes": NOTES + args.note}
    write_result(md_path, json_path, render(result), result)
    print("\n".join(table(rows)))
    print(f"\nwritten: {md_path}, {json_path}" + (f", {md_path.parent / pca['file']}" if pca else ""))


if __name__ == "__main__":
    main()
