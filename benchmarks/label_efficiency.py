"""Few labels on real data (issue 11, item 3): semi-supervised methods and label selection.

(1) HC18 fetal head (DSC) and African fetal planes (accuracy, macro F1): 5 %, 10 % and 20 % of the
    training images labelled, the rest used as unlabelled images (``--unlabeled rest``), 128 px, the
    `mini` backbone from random init, equal steps: supervised only vs mean-teacher vs fixmatch vs cps.
(2) Selection at 5 % on HC18: a random 2 % start, a model trained on it, then 3 % more picked by
    random, entropy or EGAD (`m2dino select`), and a supervised model trained on the 5 %.

Each (dataset, fraction, method, seed) is one recipe run in its own folder under ``--work-dir``; its
result is kept there (result.json), so the study runs in parts and a rerun skips what is done. A
run cut short resumes from its last checkpoint.

    python benchmarks/label_efficiency.py                               # every cell (hours on 2 cores)
    python benchmarks/label_efficiency.py --datasets hc18 --fractions 0.05 --jobs 2   # one part
    python benchmarks/label_efficiency.py --report-only                 # tables from the cells done so far
    python benchmarks/label_efficiency.py --quick                       # smoke run (tiny budgets)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.machine import cpu_name  # noqa: E402
from harness.report import RESULTS, command_line, portable_path, write_result  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = {"hc18": ("fetal_head", "DSC"), "african_planes": ("fetal_plane_cls", "Accuracy")}
METHODS = ("supervised", "mean-teacher", "fixmatch", "cps")
STRATEGIES = ("random", "entropy", "egad")


@dataclass(frozen=True)
class Cell:
    dataset: str
    fraction: float
    method: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.method}_f{self.fraction:g}_s{self.seed}"


def recipe_command(args: argparse.Namespace, dataset: str, out: Path, seed: int, extra: list[str]) -> list[str]:
    task = DATASETS[dataset][0]
    command = [sys.executable, "-m", "m2dino.recipes.unified", "--data", f"{dataset}:{args.data_root / dataset}",
               "--tasks", task, "--image-size", str(args.image_size), "--moe-blocks", "", "--backbone", "mini",
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--eval-every", str(args.steps),
               "--warmup-steps", str(max(1, args.steps // 20)), "--checkpoint-every", str(max(1, args.steps // 4)),
               "--seed", str(seed), "--threads", "1", "--num-workers", str(args.num_workers), "--no-progress",
               "--output-dir", str(out), *extra]
    if (out / "checkpoints").is_dir() and any((out / "checkpoints").iterdir()):
        command += ["--resume", "latest"]
    else:  # the folder holds our run.log at least; --overwrite removes only what a run writes
        command += ["--overwrite"]
    return command


def run_recipe(command: list[str], out: Path) -> dict:
    """Run one recipe (its output in OUT/run.log) and return its validation metrics for the task."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    with (out / "run.log").open("a") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed with status {status}; see {out / 'run.log'}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"metrics": metrics, "seconds": round(time.time() - start, 1)}


def headline(dataset: str, metrics: dict) -> dict:
    task, _ = DATASETS[dataset]
    if dataset == "hc18":
        return {"DSC": metrics["segmentation"][task]["DSC"]}
    scores = metrics["classification"][task]
    return {"Accuracy": scores["Accuracy"], "F1_macro": scores["F1_macro"]}


def run_cell(args: argparse.Namespace, cell: Cell) -> dict:
    out = args.work_dir / cell.name
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    extra = ["--data-fraction", str(cell.fraction)]
    if cell.method != "supervised":
        # African planes' published train split holds 22 byte-identical copies of test images (other names):
        # never unlabelled-train on them.
        extra += ["--unlabeled", "rest", "--semi", cell.method, "--partner", args.partner,
                  "--unlabeled-overlap", "exclude"]
    outcome = run_recipe(recipe_command(args, cell.dataset, out, cell.seed, extra), out)
    result = {**asdict(cell), **headline(cell.dataset, outcome["metrics"]), "seconds": outcome["seconds"]}
    done.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{cell.name}: {json.dumps({k: v for k, v in result.items() if k not in asdict(cell)})}", flush=True)
    return result


def run_cells(args: argparse.Namespace, wanted: list[Cell]) -> list[dict]:
    """Every cell, ``--jobs`` at a time. With ``--budget`` a cell starts only while the time left is at
    least 1.25 × the longest cell finished so far, so a time-limited machine ends with whole cells (the
    rest stay missing and resume on the next call). A failed cell is reported and the others go on."""
    started, lock, longest = time.time(), threading.Lock(), [0.0]

    def attempt(cell: Cell) -> dict | None:
        with lock:
            left = args.budget - (time.time() - started) if args.budget else float("inf")
            if left < 1.25 * longest[0] or left <= 0:
                print(f"{cell.name}: not started ({left:.0f} s of the budget left)", flush=True)
                return None
        t0 = time.time()
        try:
            result = run_cell(args, cell)
        except RuntimeError as err:
            print(f"{cell.name}: FAILED: {err}", flush=True)
            return None
        with lock:
            longest[0] = max(longest[0], time.time() - t0)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        return [r for r in pool.map(attempt, wanted) if r is not None]


# ------------------------------------------------------------------------------------------ selection
def selection_cells(args: argparse.Namespace, seed: int) -> list[dict]:
    """Random 2 % start → model → pick 3 % by each strategy → supervised model on the 5 %."""
    from m2dino.training import load_training_data

    root = args.work_dir / "selection" / f"s{seed}"
    root.mkdir(parents=True, exist_ok=True)
    train = load_training_data(f"hc18:{args.data_root / 'hc18'}", ["fetal_head"], args.image_size, seed).train
    images = sorted(e.source for e in train["fetal_head"].items)
    pool = root / "pool"  # the training images only (HC18's folder also holds annotations and held-out scans)
    pool.mkdir(exist_ok=True)
    for image in images:
        link = pool / Path(image).name
        if not link.exists():
            link.symlink_to(image)
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(images))
    start_n, total_n = max(2, round(0.02 * len(images))), max(3, round(0.05 * len(images)))
    start_list = root / "start.txt"
    start_list.write_text("".join(f"{pool / Path(images[i]).name}\n" for i in order[:start_n]))
    start_model = root / "start_model"
    if not (start_model / "result.json").is_file():
        outcome = run_recipe(recipe_command(args, "hc18", start_model, seed, ["--train-images", str(start_list)]),
                             start_model)
        (start_model / "result.json").write_text(json.dumps(headline("hc18", outcome["metrics"])) + "\n")
    rows = []
    for strategy in STRATEGIES:
        out = root / strategy
        done = out / "result.json"
        if done.is_file():
            rows.append(json.loads(done.read_text()))
            continue
        out.mkdir(parents=True, exist_ok=True)
        picked = out / "picked.csv"
        subprocess.run(["m2dino", "select", "--model", str(start_model), "--pool", str(pool), "--labelled",
                        str(start_list), "--budget", str(total_n - start_n), "--strategy", strategy,
                        "--task", "fetal_head", "--seed", str(seed), "--out", str(picked), "--quiet"], check=True)
        with picked.open() as f:
            chosen = [row["image"] for row in csv.DictReader(f)]
        labelled = out / "labelled.txt"
        labelled.write_text(start_list.read_text() + "".join(f"{p}\n" for p in chosen))
        outcome = run_recipe(recipe_command(args, "hc18", out / "model", seed, ["--train-images", str(labelled)]),
                             out / "model")
        row = {"strategy": strategy, "seed": seed, "start_images": start_n, "labelled_images": total_n,
               **headline("hc18", outcome["metrics"]), "seconds": outcome["seconds"]}
        done.write_text(json.dumps(row, indent=1) + "\n")
        print(f"selection {strategy} s{seed}: {row['DSC']:.4f}", flush=True)
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------- report
def machine() -> str:
    """Where the cells ran: the CPU, its cores and the GPU the recipes would use, if any."""
    import torch

    text = f"{cpu_name()}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()} (bf16 autocast)"
    return text


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


def summarise(cells: list[dict], selection: list[dict]) -> dict:
    table = []
    for dataset, (_, metric) in DATASETS.items():
        for fraction in sorted({c["fraction"] for c in cells if c["dataset"] == dataset}):
            base = [c[metric] for c in cells if c["dataset"] == dataset and c["fraction"] == fraction
                    and c["method"] == "supervised"]
            for method in METHODS:
                values = [c[metric] for c in cells if c["dataset"] == dataset and c["fraction"] == fraction
                          and c["method"] == method]
                if not values:
                    continue
                mean, sd = mean_sd(values)
                row = {"dataset": dataset, "fraction": fraction, "method": method, "metric": metric,
                       "mean": mean, "sd": sd, "seeds": len(values), "values": values}
                if dataset == "african_planes":
                    row["F1_macro"] = mean_sd([c["F1_macro"] for c in cells if c["dataset"] == dataset
                                               and c["fraction"] == fraction and c["method"] == method])[0]
                if method != "supervised" and base:
                    base_mean, base_sd = mean_sd(base)
                    row["gain"] = mean - base_mean
                    spread = max(sd, base_sd)
                    row["beyond_2sd"] = bool(len(values) > 1 and len(base) > 1 and row["gain"] > 2 * spread)
                table.append(row)
    sel = []
    for strategy in STRATEGIES:
        values = [r["DSC"] for r in selection if r["strategy"] == strategy]
        if values:
            mean, sd = mean_sd(values)
            sel.append({"strategy": strategy, "mean": mean, "sd": sd, "seeds": len(values), "values": values})
    return {"table": table, "selection": sel}


def fmt(mean: float, sd: float) -> str:
    return f"{mean:.4f} ± {sd:.4f}" if sd == sd else f"{mean:.4f}"


def render(result: dict) -> str:
    s = result["settings"]
    lines = [
        "# Label efficiency: semi-supervised training and label selection on real data", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; {s['steps']} steps of batch {s['batch_size']} (and as many unlabelled "
        f"images per step), {s['image_size']} px, `mini` backbone from random init, dense (no MoE), 1 thread "
        f"per run; cps partner `{s['partner']}`. Validation: HC18's held-out patients (adapter split), "
        "African planes' published test patients. Every method runs the same steps.", "",
        "A gain counts as beyond seed noise when the difference of means exceeds 2 × the larger of the two "
        "seed SDs (the seed changes the labelled subset, the initialisation and the batch order).", "",
        "## Semi-supervised vs supervised", "",
        "| dataset | labelled | method | metric | mean ± SD | seeds | gain vs supervised | beyond 2 SD |",
        "|---|---:|---|---|---|---:|---:|---|"]
    for r in result["summary"]["table"]:
        gain = f"{r['gain']:+.4f}" if "gain" in r else ""
        beyond = ("yes" if r["beyond_2sd"] else "no") if "beyond_2sd" in r else ""
        metric = r["metric"] + (f" (macro F1 {r['F1_macro']:.3f})" if "F1_macro" in r else "")
        lines.append(f"| {r['dataset']} | {r['fraction']:.0%} | {r['method']} | {metric} | {fmt(r['mean'], r['sd'])} "
                     f"| {r['seeds']} | {gain} | {beyond} |")
    if result["summary"]["selection"]:
        lines += ["", "## Choosing the labels (HC18, 5 %: random 2 % start + 3 % picked, supervised)", "",
                  "| strategy | DSC mean ± SD | seeds |", "|---|---|---:|"]
        lines += [f"| {r['strategy']} | {fmt(r['mean'], r['sd'])} | {r['seeds']} |"
                  for r in result["summary"]["selection"]]
    missing = result.get("missing", [])
    lines += ["", "## Cells not run yet", "", ", ".join(f"`{m}`" for m in missing) if missing else "none"]
    lines += ["", "## Interpretation", "", result.get("interpretation", "(see the closing note of issue 11)"), ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in result["summary"]["table"]})
    if not datasets:
        return
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for method in METHODS:
            rows = [r for r in result["summary"]["table"] if r["dataset"] == dataset and r["method"] == method]
            if rows:
                ax.errorbar([100 * r["fraction"] for r in rows], [r["mean"] for r in rows],
                            yerr=[0 if r["sd"] != r["sd"] else r["sd"] for r in rows], marker="o", capsize=3,
                            label=method)
        ax.set_xlabel("labelled training images (%)")
        ax.set_ylabel(DATASETS[dataset][1])
        ax.set_title(dataset)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=SHARED, help="folder holding hc18/ and african_planes/")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench_label_efficiency"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--selection", action=argparse.BooleanOptionalAction, default=True,
                        help="run the label-selection study (HC18, 5 %%)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--partner", default="resnet18")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each uses 1 thread)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="data-loading processes per run (0 = in the training process; a GPU needs more)")
    parser.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                        help="start no cell that would likely end after this many seconds (see run_cells)")
    parser.add_argument("--name", default="label_efficiency", help="output file stem under --out-dir")
    parser.add_argument("--report-only", action="store_true", help="tables from the cells already done")
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 steps at 64 px, one seed, into /tmp")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.image_size, args.seeds, args.fractions = 6, 64, [0], [0.05]
        args.work_dir, args.out_dir = (Path("/tmp/m2dino_label_efficiency_quick"),
                                       Path("/tmp/m2dino_label_efficiency_quick"))
    wanted = [Cell(d, f, m, s) for d in args.datasets for f in args.fractions for m in args.methods for s in args.seeds]
    if args.report_only:
        cells = [json.loads((args.work_dir / c.name / "result.json").read_text()) for c in wanted
                 if (args.work_dir / c.name / "result.json").is_file()]
    else:
        cells = run_cells(args, wanted)
    selection = []
    for seed in args.seeds:
        done = [json.loads(p.read_text())
                for p in sorted((args.work_dir / "selection" / f"s{seed}").glob("*/result.json"))
                if p.parent.name in STRATEGIES]
        if args.selection and not args.report_only:
            done = selection_cells(args, seed)
        selection += done
    missing = [c.name for c in wanted if not (args.work_dir / c.name / "result.json").is_file()]
    result = {"command": command_line(), "machine": machine(),
              "settings": {k: (portable_path(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "cells": cells, "selection": selection, "summary": summarise(cells, selection), "missing": missing}
    previous = args.out_dir / f"{args.name}.json"
    if previous.is_file():  # keep the hand-written interpretation (and, on a report, the machine) across re-renders
        earlier = json.loads(previous.read_text())
        result["interpretation"] = earlier.get("interpretation", "")
        if args.report_only:
            result["machine"] = earlier.get("machine", result["machine"])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_result(args.out_dir / f"{args.name}.md", previous, render(result), result)
    plot(result, args.out_dir / f"{args.name}.png")
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
