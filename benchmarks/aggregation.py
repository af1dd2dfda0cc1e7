"""Task-specific vs clinically grouped vs unified models, with and without MoE, at fractions of the
training data, on real ultrasound: does training tasks together help or hurt (negative transfer)?

Data (public datasets; see ``../shared/data/README.md``):

- ``--fmc ROOT`` (the v2 study): the tasks of an FMC_UIA root, such as the one `m2dino data
  build-public` makes from eight public datasets; scored on ``--fmc-val ROOT`` (else 20% held out).
  Rows that name their source dataset and image (``meta``) share a fraction's subset across tasks.
- Without ``--fmc`` (the first study): HC18 -> ``fetal_head``, ``fetal_head_det``,
  ``fetal_head_axis`` (optionally ``fetal_head_circumference``), African fetal planes ->
  ``fetal_plane_cls``, USGRA-seg -> ``nerve_vessel_seg``, read from ``--data-root`` through
  `m2dino.data.adapters`.

Every configuration of a task is scored on the same, full scoring set; the training fraction is
drawn per dataset by image, per seed (the tasks of an image keep or drop it together).

Paradigms, all with the same total step budget S: unified (one model, S steps), grouped (one model
per clinical group of the task registry, S·|group|/|tasks| steps each), task-specific (one model
per task, S/|tasks| steps each) and, with ``--affinity-groups FILE``, affinity (grouped by
`benchmarks/task_affinity.py`'s recommendation). Tasks are drawn uniformly (alpha = 0), so every
task gets S/|tasks| steps in expectation in every paradigm. Backbone ``mini`` (4 blocks, width
128) randomly initialised (no pretrained weights are reachable here), MoE blocks 2,3 with 4
experts top-1 vs a dense model; a one-task model is always dense (see `run_signature`).

    python benchmarks/aggregation.py --fmc ROOT/train --fmc-val ROOT/test --fmc-tasks ... \
        --image-size 128 --steps 10000 --fractions 0.1 1 --seeds 0 1 --jobs 2   # the v2 study
    python benchmarks/aggregation.py --quick    # a few minutes, smaller everything -> runs/aggregation-quick/
    python benchmarks/aggregation.py --report-only   # rebuild md/png from the json

Finished runs are cached in ``--output-dir`` and reused when their settings match (``--fresh``
retrains), so the study can run in parts: ``--paradigms task_specific`` first, the rest later with
the same flags. The markdown's interpretation section (between the ``interpretation`` markers) is
written by hand and kept when the report is regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aggregation_parts.report import write_report  # noqa: E402
from harness.report import command_line, portable_path  # noqa: E402
from m2dino.data import Sample, image_key  # noqa: E402
from m2dino.image import ResizeGeometry  # noqa: E402
from m2dino.tasks import get_task  # noqa: E402

# dataset -> (tasks it gives, the split used for validation)
DATASETS = {"hc18": (("fetal_head", "fetal_head_det", "fetal_head_axis", "fetal_head_circumference"), "val"),
            "african_planes": (("fetal_plane_cls",), "test"),
            "usgra": (("nerve_vessel_seg",), "test")}
DEFAULT_TASKS = ["fetal_head", "fetal_head_det", "fetal_head_axis", "fetal_plane_cls", "nerve_vessel_seg"]
PARADIGMS = ("task_specific", "grouped", "unified")
# "affinity": grouped by `benchmarks/task_affinity.py`'s recommendation (--affinity-groups FILE)
ALL_PARADIGMS = ("task_specific", "grouped", "affinity", "unified")
MOE_SETTINGS = {"moe": "2,3", "dense": ""}
FULL = dict(steps=900, fractions=[0.1, 0.3, 1.0], seeds=[0, 1], train_limit=None, val_limit=None)
QUICK = dict(steps=100, fractions=[0.1, 1.0], seeds=[0], train_limit=120, val_limit=40)


# ----------------------------------------------------------------------------------- options
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"),
                   help="folder holding hc18/, african_planes/ and usgra/ (default: ../shared/data from the repo)")
    p.add_argument("--fmc", default=None, metavar="ROOT", help="also train the tasks of this FMC_UIA root")
    p.add_argument("--fmc-val", default=None, metavar="ROOT",
                   help="validation FMC_UIA root for --fmc (else 20%% held out)")
    p.add_argument("--fmc-tasks", nargs="+", default=None, help="only these tasks of --fmc")
    p.add_argument("--tasks", nargs="+", default=None,
                   help=f"tasks of the public datasets (default: {' '.join(DEFAULT_TASKS)}, or none with --fmc; "
                        "fetal_head_circumference can be added)")
    p.add_argument("--quick", action="store_true",
                   help="few steps, fractions 10%% and 100%%, at most 120 training images and 40 validation "
                        "samples per dataset/task; writes into runs/aggregation-quick unless --results-dir is given")
    p.add_argument("--steps", type=int, default=None, help="total step budget S per paradigm (full: 900, quick: 100)")
    p.add_argument("--fractions", type=float, nargs="+", default=None, help="training-data fractions (full: 0.1 0.3 1)")
    p.add_argument("--moe", nargs="+", default=list(MOE_SETTINGS), choices=list(MOE_SETTINGS))
    p.add_argument("--paradigms", nargs="+", default=None, choices=list(ALL_PARADIGMS),
                   help=f"default: {' '.join(PARADIGMS)}, and affinity when --affinity-groups is given")
    p.add_argument("--affinity-groups", default=None, metavar="FILE",
                   help="a {group: [tasks]} file (benchmarks/task_affinity.py writes one): adds the paradigm "
                        "'affinity', grouped by it under the same budget rule as the clinical groups")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="every configuration runs once per seed; the seed also draws the fraction's subset "
                        "(full: 0 1, quick: 0)")
    p.add_argument("--train-limit", type=int, default=None, help="at most this many training images per dataset")
    p.add_argument("--val-limit", type=int, default=None, help="at most this many validation samples per task")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--backbone", default="mini")
    p.add_argument("--moe-blocks", default=MOE_SETTINGS["moe"], help="MoE blocks of the 'moe' setting")
    p.add_argument("--num-experts", type=int, default=4)
    p.add_argument("--top-k", type=int, default=1)
    p.add_argument("--alpha", type=float, default=0.0, help="task sampling ∝ n^alpha; 0 = every task equally often")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads per model (1 is much faster than 2 on a busy 2-core machine)")
    p.add_argument("--jobs", type=int, default=1,
                   help="models trained at once, each in its own forked process (the data is shared)")
    p.add_argument("--output-dir", default=None, help="run folders (default runs/aggregation[-quick])")
    p.add_argument("--results-dir", default=None,
                   help="where aggregation.{md,json,png} go (default benchmarks/results)")
    p.add_argument("--fresh", action="store_true", help="retrain runs that are already finished in --output-dir")
    p.add_argument("--report-only", action="store_true", help="rebuild the markdown and plot from the json")
    p.add_argument("--finished-only", action="store_true",
                   help="train nothing: report the models already finished in --output-dir and list the rest "
                        "as not yet run (a study in parts)")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.output_dir = Path(args.output_dir or REPO / "runs" / ("aggregation-quick" if args.quick else "aggregation"))
    args.results_dir = Path(args.results_dir or (args.output_dir if args.quick else REPO / "benchmarks" / "results"))
    if not args.report_only:
        if args.steps < 1:
            p.error("--steps must be positive")
        if any(not 0 < f <= 1 for f in args.fractions):
            p.error("--fractions must be in (0, 1]")
        if args.jobs < 1:
            p.error("--jobs must be at least 1")
    if args.paradigms is None:
        args.paradigms = [p_ for p_ in ALL_PARADIGMS if p_ in PARADIGMS or (p_ == "affinity" and args.affinity_groups)]
    if "affinity" in args.paradigms and not args.affinity_groups:
        p.error("--paradigms affinity needs --affinity-groups FILE")
    return args


# -------------------------------------------------------------------------------------- data
@dataclass
class StudyData:
    train: dict[str, list[Sample]]       # task -> samples (images pre-resized, see `_shrink`)
    val: dict[str, list[Sample]]         # task -> samples at their original size
    dataset_of: dict[str, str]           # task -> dataset name
    description: dict[str, dict]         # dataset -> counts and splits, for the report


def _fail(message: str) -> None:
    raise SystemExit(f"benchmarks/aggregation.py: {message}")


def _check_layout(root: Path, tasks: Sequence[str]) -> None:
    """A clear message for a missing dataset folder before anything is decoded."""
    if not root.is_dir():
        _fail(f"data root not found: {root}\n  expected hc18/, african_planes/ and usgra/ as described in "
              "../shared/data/README.md; pass --data-root PATH")
    needed = {name for name, (emits, _) in DATASETS.items() if set(emits) & set(tasks)}
    missing = [name for name in sorted(needed) if not (root / name).is_dir()]
    if missing:
        _fail("dataset folder(s) not found: " + "; ".join(
            f"{root / name} (for {', '.join(t for t in tasks if t in DATASETS[name][0])})" for name in missing)
            + "\n  pass --data-root PATH, or leave those tasks out with --tasks")


def _shrink(sample: Sample, size: int) -> Sample:
    """The training sample letterboxed once to 2× the model input: the training transform then
    letterboxes it to ``size`` again, which is the same geometry as from the original (an exact
    2× downscale of a square) but costs far less per step than resizing an 800×540 image."""
    from m2dino.data import resize_sample

    geometry = ResizeGeometry.create(sample.size, (2 * size, 2 * size), "letterbox")
    return resize_sample(sample, geometry)


def _spread(n: int, limit: int | None) -> list[int]:
    """``limit`` indices spread evenly over ``range(n)`` (all of them without a limit)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


def _limit_sources(items, limit: int | None):
    """The entries of ``limit`` distinct images spread over the sorted file names (all tasks of an
    image kept together)."""
    if limit is None:
        return items
    sources = sorted({item.source for item in items.items})
    keep = {sources[i] for i in _spread(len(sources), limit)}
    return items.filter(lambda item: item.source in keep)


def load_study_data(args: argparse.Namespace, tasks: Sequence[str]) -> StudyData:
    from m2dino.data import DataError
    from m2dino.data.adapters import load_dataset

    root = Path(args.data_root)
    public = [t for t in tasks if any(t in emits for emits, _ in DATASETS.values())]
    if public:
        _check_layout(root, public)
    train: dict[str, list[Sample]] = {}
    val: dict[str, list[Sample]] = {}
    dataset_of: dict[str, str] = {}
    description: dict[str, dict] = {}
    started = time.time()
    for name, (emits, val_split) in DATASETS.items():
        wanted = [t for t in public if t in emits]
        if not wanted:
            continue
        try:
            splits = load_dataset(name, root / name)
            train_items = _limit_sources(splits["train"].filter(lambda item: item.task in wanted), args.train_limit)
            val_items = splits[val_split].filter(lambda item: item.task in wanted)
            for task, samples in train_items.by_task().items():
                train[task] = [_shrink(s, args.image_size) for s in samples.materialize()]
            for task, samples in val_items.by_task().items():
                val[task] = [samples[i] for i in _spread(len(samples), args.val_limit)]
        except (DataError, OSError) as err:
            _fail(f"could not read {name} from {root / name}: {err}")
        for task in wanted:
            dataset_of[task] = name
        description[name] = {"path": portable_path(root / name), "tasks": wanted, "val_split": val_split,
                             "train_images": len({s.source for t in wanted for s in train[t]}),
                             "val_samples_per_task": {t: len(val[t]) for t in wanted}}
    if args.fmc:
        _load_fmc(args, train, val, dataset_of, description)
    missing = [t for t in tasks if t not in train or t not in val]
    if missing:
        _fail(f"no training or validation samples for tasks {missing}")
    print(f"data loaded in {time.time() - started:.0f}s: "
          + ", ".join(f"{t} {len(train[t])} train / {len(val[t])} val" for t in tasks), flush=True)
    return StudyData(train, val, dataset_of, description)


def study_tasks_and_data(args: argparse.Namespace) -> tuple[list[str], StudyData]:
    """The study's tasks (the public datasets' ``--tasks``, then those of ``--fmc``) and their data."""
    # With --fmc alone the study is that root's (the v2 study on `m2dino data build-public`'s root).
    tasks = list(args.tasks if args.tasks is not None else ([] if args.fmc else DEFAULT_TASKS))
    for task in tasks:
        get_task(task)  # an unknown id is an error here, not after loading
    data = load_study_data(args, tasks)
    if args.fmc:
        tasks += [t for t in data.description["fmc"]["tasks"] if t not in tasks]
    return tasks, data


def _load_fmc(args, train, val, dataset_of, description) -> None:
    from m2dino.training import load_training_data

    if not Path(args.fmc).is_dir():
        _fail(f"--fmc: folder not found: {args.fmc}")
    data = load_training_data(args.fmc, args.fmc_tasks, args.image_size, 0, val_data=args.fmc_val)
    for task, samples in data.train.items():
        if task in train:
            _fail(f"--fmc task {task} is also given by the public datasets; choose it with --tasks or --fmc-tasks")
        sources = sorted({s.source for s in samples})
        keep = {sources[i] for i in _spread(len(sources), args.train_limit)}
        train[task] = [_shrink(s, args.image_size) for s in samples if s.source in keep]
        held_out = list(data.val.get(task, []))
        val[task] = [held_out[i] for i in _spread(len(held_out), args.val_limit)]
        # `m2dino data build-public` records each row's source dataset: tasks of one dataset (BUSI's
        # lesion mask and class) then share their images' fraction subset, as the public adapters do.
        datasets = {s.meta.get("dataset") for s in train[task]}
        dataset_of[task] = datasets.pop() if len(datasets) == 1 and None not in datasets else "fmc"
    description["fmc"] = {"path": portable_path(args.fmc), "tasks": sorted(data.train),
                          "val_split": portable_path(args.fmc_val) if args.fmc_val else "20% held out",
                          "train_images": len({s.source for t in data.train for s in train[t]}),
                          "val_samples_per_task": {t: len(val[t]) for t in data.train}}


def fraction_subset(data: StudyData, tasks: Sequence[str], fraction: float, seed: int) -> dict[str, list[Sample]]:
    """A seeded ``fraction`` of each dataset's training images (at least 2); every task of an image
    keeps or drops it together (a joint model sees no more distinct images than the single-task
    ones), and the same subset serves every paradigm and MoE setting of a seed."""
    # Not `TrainingData.fraction` (the recipes' --data-fraction), which draws from all images at
    # once: drawing per dataset gives every dataset exactly its fraction, so a small one (USGRA's
    # 184 training images) cannot be under-drawn by chance in one seed. These draws also define the
    # finished runs' signatures, so changing them would re-train the whole committed study.
    if fraction >= 1:
        return {t: data.train[t] for t in tasks}
    subset = {}
    for dataset in sorted({data.dataset_of[t] for t in tasks}):
        members = [t for t in tasks if data.dataset_of[t] == dataset]
        images = sorted({image_key(s) for t in members for s in data.train[t]})
        rng = np.random.default_rng([seed, zlib.crc32(dataset.encode())])
        keep = {images[i] for i in rng.permutation(len(images))[: max(2, round(len(images) * fraction))]}
        for task in members:
            subset[task] = [s for s in data.train[task] if image_key(s) in keep]
    return subset


# ---------------------------------------------------------------------------------- baseline
def constant_baseline(data: StudyData, tasks: Sequence[str], image_size: int) -> list[dict]:
    """What a predictor that ignores the image scores on each validation set: the per-pixel majority
    class of the training masks, the majority class, the mean box, the mean keypoints, the mean
    value (all from 100% of the training data, in letterboxed coordinates mapped to each image)."""
    from m2dino.evaluation import fit_constant_predictor, score_submission
    from m2dino.models import SegmentationPrediction
    from m2dino.recipes import RunSummary, task_rows
    from m2dino.training import (
        InMemorySubmission,
        TrainResult,
        error_scales,
        normalised_task_scores,
        sample_ground_truth,
    )

    grid = (2 * image_size, 2 * image_size)  # the letterboxed grid of the pre-resized training samples
    truths, predictions, masks = [], {}, {}
    for task in tasks:
        spec, train, val = get_task(task), data.train[task], data.val[task]
        predict = fit_constant_predictor(spec, train, grid)
        for index, sample in enumerate(val):
            key = f"{task}/{index:06d}"
            truths.append(sample_ground_truth(sample, key))
            pred = predict(ResizeGeometry.create(sample.size, grid, "letterbox"))
            if isinstance(pred, SegmentationPrediction):
                masks[key] = pred.mask
            predictions.setdefault(spec.label_kind.name, {}).setdefault(task, {})[key] = pred
    metrics = score_submission(truths, InMemorySubmission(predictions, masks)) if truths else {"summary": {}}
    scores = normalised_task_scores(metrics, error_scales({t: data.val[t] for t in tasks}))
    result = TrainResult(Path("."), metrics, scores, 0.0, 0, 0, 0)
    return task_rows([RunSummary("constant", list(tasks), result)])


# ---------------------------------------------------------------------------------- training
def paradigm_groups(paradigm: str, tasks: Sequence[str], affinity_groups: str | None = None) -> dict[str, list[str]]:
    """The groups of a grouped paradigm: the registry's clinical groups, or the affinity file's."""
    from m2dino.recipes import plan_groups

    return plan_groups(affinity_groups if paradigm == "affinity" else None, tasks)


def plan_models(paradigm: str, tasks: Sequence[str], total_steps: int,
                affinity_groups: str | None = None) -> list[tuple[str, list[str], int]]:
    """(model name, its tasks, its steps) for one paradigm under the budget rule."""
    n = len(tasks)
    if paradigm == "unified":
        return [("unified", list(tasks), total_steps)]
    if paradigm in ("grouped", "affinity"):
        groups = paradigm_groups(paradigm, tasks, affinity_groups)
        return [(group, members, max(1, round(total_steps * len(members) / n))) for group, members in groups.items()]
    return [(task, [task], max(1, round(total_steps / n))) for task in tasks]


def run_signature(args, tasks: list[str], steps: int, moe: str, seed: int, train: dict[str, list[Sample]],
                  val: dict[str, list[Sample]]) -> dict:
    """Everything that determines a run's result (two runs with the same signature are the same run).

    A one-task model is always dense: task routing sends all its tokens to the one expert its task
    picks, a copy of the dense MLP, so its MoE twin would cost a run and measure nothing."""
    dense = moe == "dense" or len(tasks) == 1
    return {"tasks": tasks, "steps": steps, "moe_blocks": MOE_SETTINGS["dense"] if dense else args.moe_blocks,
            "seed": seed, "image_size": args.image_size, "batch_size": args.batch_size, "backbone": args.backbone,
            "num_experts": args.num_experts, "top_k": args.top_k, "alpha": args.alpha,
            "train": {t: len(train[t]) for t in tasks},
            "train_hash": zlib.crc32("|".join(s.source for t in tasks for s in train[t]).encode()),
            "val": {t: len(val[t]) for t in tasks}}


def train_model(args, name: str, tasks: list[str], steps: int, moe: str, seed: int,
                train: dict[str, list[Sample]], val: dict[str, list[Sample]], out_dir: Path,
                step_callback=None) -> dict:
    """Train one model (or reuse a finished identical run, unless a ``step_callback`` must see it
    train) -> its per-task rows."""
    from m2dino.data import LoaderConfig
    from m2dino.recipes import RunConfig, RunSummary, build_model, task_rows, train_config
    from m2dino.training import Trainer

    signature = run_signature(args, tasks, steps, moe, seed, train, val)
    cached = finished_run(out_dir, signature)
    if cached is not None and not args.fresh and step_callback is None:
        return cached
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a stale or unfinished run of this study: start it again
    run = RunConfig.from_dict({
        "model": {"backbone": args.backbone, "moe_blocks": signature["moe_blocks"], "image_size": args.image_size,
                  "num_experts": args.num_experts, "top_k": args.top_k},
        "train": {"steps": steps, "seed": seed, "batch_size": args.batch_size, "alpha": args.alpha,
                  "eval_every": steps, "warmup_steps": max(1, round(0.05 * steps)), "mixed_precision": "no"}},
        "the aggregation study")
    started = time.time()
    model = build_model(run.model, tasks, seed)
    trainer = Trainer(model, {t: train[t] for t in tasks}, {t: val[t] for t in tasks},
                      train_config(run.train, out_dir, tasks), progress=False,
                      # a --jobs worker is a daemon process, which may not start loader workers (the
                      # batches are the same for any number of them)
                      loading=LoaderConfig(num_workers=0 if args.jobs > 1 else None), step_callback=step_callback)
    result = trainer.train()
    seconds = time.time() - started
    if result.interrupted:
        raise SystemExit(f"{out_dir}: training was interrupted at step {result.steps_done}")
    rows = task_rows([RunSummary(name, tasks, result)])
    record = {"signature": signature, "rows": rows, "seconds": seconds, "steps_done": result.steps_done,
              "nonfinite_steps": result.nonfinite_steps,
              "parameters": sum(p.numel() for p in model.parameters())}
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # optimizer states: not needed afterwards
    (out_dir / "aggregation_run.json").write_text(json.dumps(record, indent=2) + "\n")
    return {**record, "cached": False}


def finished_run(out_dir: Path, signature: dict) -> dict | None:
    """The record of a finished run with this signature in ``out_dir``, or None."""
    cache = out_dir / "aggregation_run.json"
    if not cache.is_file():
        return None
    cached = json.loads(cache.read_text())
    return {**cached, "cached": True} if cached.get("signature") == signature else None


def plan_study(args, data: StudyData, tasks: list[str]) -> list[dict]:
    """Every model of the study, in the order of ``--paradigms`` (so a partial run finishes whole
    paradigms first): its configuration, tasks, steps, training subset, folder and signature key."""
    subsets = {(fraction, seed): fraction_subset(data, tasks, fraction, seed)
               for fraction in args.fractions for seed in args.seeds}
    planned = []
    for paradigm in args.paradigms:
        for seed in args.seeds:
            for fraction in args.fractions:
                for moe in args.moe:
                    for name, model_tasks, steps in plan_models(paradigm, tasks, args.steps, args.affinity_groups):
                        train = subsets[(fraction, seed)]
                        signature = run_signature(args, model_tasks, steps, moe, seed, train, data.val)
                        # a one-task model is the same run under every MoE setting: one folder for
                        # all, so that a part run with `--moe moe` alone finds it finished
                        folder = "dense" if signature["moe_blocks"] == MOE_SETTINGS["dense"] else moe
                        planned.append({
                            "fraction": fraction, "moe": moe, "paradigm": paradigm, "seed": seed, "name": name,
                            "tasks": model_tasks, "steps": steps, "train": train,
                            "key": json.dumps(signature, sort_keys=True),
                            "out_dir": (args.output_dir / f"f{round(fraction * 100):03d}" / folder / f"seed{seed}"
                                        / paradigm / name)})
    return planned


_POOL_STATE: dict = {}  # what a forked worker needs: set before the fork, never pickled


def _train_planned(index: int) -> tuple[int, dict]:
    args, data, model = _POOL_STATE["args"], _POOL_STATE["data"], _POOL_STATE["distinct"][index]
    torch.set_num_threads(args.threads)
    return index, train_model(args, model["name"], model["tasks"], model["steps"], model["moe"], model["seed"],
                              model["train"], data.val, model["out_dir"])


def run_study(args, data: StudyData, tasks: list[str]) -> tuple[list[dict], list[dict], list[str]]:
    """-> (one row per task × model of the study, the model log, the models not yet run (only with
    ``--finished-only``: they are left out of the rows)). Models with the same signature (a
    one-task group and its task-specific model; a one-task model's MoE and dense settings) are
    trained once; ``--jobs`` trains that many at a time."""
    import multiprocessing

    planned = plan_study(args, data, tasks)
    first: dict[str, dict] = {}
    for model in planned:
        first.setdefault(model["key"], model)
    distinct = list(first.values())
    missing = []
    if args.finished_only:
        done = {m["key"] for m in distinct if finished_run(m["out_dir"], json.loads(m["key"])) is not None}
        missing = [m for m in distinct if m["key"] not in done]
        distinct = [m for m in distinct if m["key"] in done]
        planned = [m for m in planned if m["key"] in done]
        for model in missing:
            print(f"not yet run: {model['out_dir']}", flush=True)
    total_steps = sum(m["steps"] for m in distinct)
    print(f"{len(planned)} models ({len(distinct)} distinct), {total_steps} steps in all, {args.jobs} at a time",
          flush=True)
    records: dict[str, dict] = {}
    started, done_steps, trained_seconds, trained_steps = time.time(), 0, 0.0, 0
    _POOL_STATE.update(args=args, data=data, distinct=distinct)
    pool = multiprocessing.get_context("fork").Pool(args.jobs) if args.jobs > 1 else None
    try:
        results = pool.imap_unordered(_train_planned, range(len(distinct))) if pool else map(
            _train_planned, range(len(distinct)))
        for finished, (index, record) in enumerate(results, 1):
            model = distinct[index]
            records[model["key"]] = record
            done_steps += model["steps"]
            if not record["cached"]:
                trained_seconds += record["seconds"]
                trained_steps += model["steps"]
            rate = trained_seconds / trained_steps / args.jobs if trained_steps else None
            eta = f", ~{(total_steps - done_steps) * rate / 60:.0f} min left" if rate else ""
            metrics = ", ".join(f"{r['task']} {r['metric']}={_fmt(r['value'])} (score {_fmt(r['score'], 3)})"
                                for r in record["rows"])
            how = "cached" if record["cached"] else f"{record['seconds']:.0f}s"
            print(f"[{finished}/{len(distinct)}] {round(model['fraction'] * 100)}% {model['moe']} seed{model['seed']} "
                  f"{model['paradigm']}/{model['name']}: {model['steps']} steps, {how}: {metrics}"
                  f"  [{(time.time() - started) / 60:.1f} min{eta}]", flush=True)
    finally:
        if pool:
            pool.close()
            pool.join()
        _POOL_STATE.clear()
    rows, log = [], []
    for model in planned:
        record, owner = records[model["key"]], first[model["key"]]
        same_as = None if owner is model else portable_path(owner["out_dir"])
        for row in record["rows"]:
            rows.append({**row, "model": model["name"], "fraction": model["fraction"], "moe": model["moe"],
                         "paradigm": model["paradigm"], "seed": model["seed"], "steps": model["steps"],
                         "model_tasks": len(model["tasks"]), "train_samples": len(model["train"][row["task"]])})
        log.append({key: model[key] for key in ("fraction", "moe", "paradigm", "seed", "steps")}
                   | {"model": model["name"], "tasks": model["tasks"], "seconds": record["seconds"],
                      "cached": record["cached"], "parameters": record["parameters"],
                      "nonfinite_steps": record["nonfinite_steps"], "same_as": same_as})
    return rows, log, [str(m["out_dir"].relative_to(args.output_dir)) for m in missing]


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# -------------------------------------------------------------------------------------- main
def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    json_path = args.results_dir / "aggregation.json"
    if args.report_only:
        if not json_path.is_file():
            _fail(f"--report-only: {json_path} not found; run the study first")
        print(write_report(json.loads(json_path.read_text()), args.results_dir))
        return
    torch.set_num_threads(args.threads)
    started = time.time()
    tasks, data = study_tasks_and_data(args)
    baseline = constant_baseline(data, tasks, args.image_size)
    print("constant predictor: " + ", ".join(f"{r['task']} {r['metric']}={_fmt(r['value'])} "
                                             f"(score {_fmt(r['score'], 3)})"
                                             for r in baseline), flush=True)
    rows, log, missing = run_study(args, data, tasks)
    seconds = time.time() - started
    command = command_line(["benchmarks/aggregation.py", *(argv or sys.argv[1:])])

    study = {
        "command": command.strip(), "git_commit": _git_commit(), "seconds": seconds,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": args.threads,
                    "jobs": args.jobs},
        "settings": {"tasks": tasks, "groups": paradigm_groups("grouped", tasks),
                     "affinity_groups": (paradigm_groups("affinity", tasks, args.affinity_groups)
                                         if "affinity" in args.paradigms else None),
                     "total_steps": args.steps, "fractions": args.fractions, "moe": args.moe,
                     "moe_blocks": args.moe_blocks, "num_experts": args.num_experts, "top_k": args.top_k,
                     "paradigms": args.paradigms, "image_size": args.image_size, "batch_size": args.batch_size,
                     "backbone": args.backbone, "pretrained": None, "alpha": args.alpha, "seeds": args.seeds,
                     "quick": args.quick, "train_limit": args.train_limit,
                     "val_limit": args.val_limit},
        "datasets": data.description,
        "rows": rows,
        "constant_baseline": baseline,
        "models": log,
        "not_yet_run": missing,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(study, indent=1) + "\n")
    print(write_report(study, args.results_dir))
    print(f"\nwrote {json_path}, {args.results_dir / 'aggregation.md'}, {args.results_dir / 'aggregation.png'} "
          f"in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
