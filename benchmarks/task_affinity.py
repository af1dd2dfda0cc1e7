"""Which tasks should train together? Lookahead inter-task affinity (Fifty et al. 2021) from one
short unified run, and the grouping it recommends beside the clinical one.

One dense unified model trains on every task of the study (the data, model and settings of
`benchmarks/aggregation.py`, whose flags this script takes, at 100 % of the training images);
every ``--every`` steps `m2dino.training.task_affinity.AffinityTracker` measures on fresh
training batches of every task how much one step on task i's loss alone changes task j's loss.
The run's mean matrix gives, for each number of groups, the partition with the most affinity
within groups (exhaustive search). The one with as many groups as the clinical grouping is
written as a ``{group: [tasks]}`` file, which `recipes/grouped.py --groups` and
`benchmarks/aggregation.py --affinity-groups` read, so the two groupings can be compared under
the same step budget.

    python benchmarks/task_affinity.py --fmc ROOT/train --fmc-val ROOT/test --fmc-tasks ... \\
        --image-size 128 --steps 2000 --every 50
    python benchmarks/task_affinity.py --report-only   # md and png again from the json

Writes benchmarks/results/task_affinity.{md,json,png} and task_affinity_groups.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aggregation  # noqa: E402  (the study's data loading and training, shared)
from harness.report import command_line  # noqa: E402
from m2dino.recipes import plan_groups  # noqa: E402
from m2dino.training import AffinityTracker, recommended_groups  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Every other flag is `benchmarks/aggregation.py`'s (data, model, --steps, "
                                       "--seeds: the first seed is used).")
    p.add_argument("--every", type=int, default=50, help="steps between two affinity measurements")
    p.add_argument("--probe-batch", type=int, default=16, help="images per task in a measurement")
    p.add_argument("--report-only", action="store_true", help="rebuild the markdown and plot from the json")
    args, rest = p.parse_known_args(argv)
    if "--output-dir" not in rest:
        rest += ["--output-dir", str(aggregation.REPO / "runs" / "task_affinity")]
    args.study = aggregation.parse_args(rest + (["--report-only"] if args.report_only else []))
    if args.every < 1:
        p.error("--every must be at least 1")
    return args


def measure(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    study = args.study
    torch.set_num_threads(study.threads)
    tasks, data = aggregation.study_tasks_and_data(study)
    if len(tasks) < 2:
        raise SystemExit("benchmarks/task_affinity.py: affinity needs at least 2 tasks")
    seed = study.seeds[0]
    started = time.time()
    tracker = AffinityTracker({t: data.train[t] for t in tasks}, args.every, args.probe_batch, seed)
    record = aggregation.train_model(study, "unified", tasks, study.steps, "dense", seed, data.train, data.val,
                                     study.output_dir / "unified", step_callback=tracker)
    report = tracker.report(plan_groups(None, tasks))
    return {
        "command": command_line(["benchmarks/task_affinity.py", *argv]),
        "git_commit": aggregation._git_commit(), "seconds": time.time() - started,
        "settings": {"tasks": tasks, "steps": study.steps, "every": args.every, "probe_batch": args.probe_batch,
                     "image_size": study.image_size, "batch_size": study.batch_size, "backbone": study.backbone,
                     "seed": seed},
        "run": {"rows": record["rows"], "seconds": record["seconds"]},
        **report,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, mean = result["settings"]["tasks"], np.array(result["mean"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * len(tasks), 0.6 + 0.55 * len(tasks)))
    # the colours span the off-diagonal entries (a task's own step, on the diagonal, is far larger)
    limit = float(np.abs(mean[~np.eye(len(tasks), dtype=bool)]).max()) or 1.0
    image = ax.imshow(mean, cmap="RdBu", vmin=-limit, vmax=limit)
    for i in range(len(tasks)):
        for j in range(len(tasks)):
            ax.text(j, i, f"{mean[i, j]:+.1e}", ha="center", va="center", fontsize=5.5)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(tasks)))
    ax.set_yticklabels(tasks, fontsize=8)
    ax.set_xlabel("task j (its loss after the step)")
    ax.set_ylabel("task i (the step taken on its loss)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="Z[i, j] = 1 − L_j(after) / L_j(before) (diagonal clipped)")
    s = result["settings"]
    ax.set_title(f"Lookahead affinity, mean of {len(result['measurements'])} measurements over "
                 f"{s['steps']} unified steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    s = result["settings"]
    tasks, mean = s["tasks"], np.array(result["mean"])
    k = result["num_groups"]
    chosen = result["recommended"][str(k)]
    fmt = lambda groups: "; ".join("{" + ", ".join(f"`{t}`" for t in g) + "}" for g in groups)  # noqa: E731
    help_rows = []
    for j, target in enumerate(tasks):
        others = [(mean[i, j], tasks[i]) for i in range(len(tasks)) if i != j]
        best, worst = max(others), min(others)
        help_rows.append(f"| `{target}` | {mean[j, j]:+.2e} | `{best[1]}` {best[0]:+.2e} | "
                         f"`{worst[1]}` {worst[0]:+.2e} |")
    lines = [
        "# Task affinity: which tasks help each other",
        "",
        f"Command: `{result['command']}` (commit {result['git_commit']}; {result['seconds'] / 60:.0f} min).",
        "",
        "![mean lookahead affinity](task_affinity.png)",
        "",
        "## Method",
        "",
        f"- One dense unified model (`{s['backbone']}`, random init, {s['image_size']} px, batch {s['batch_size']}) "
        f"trained for {s['steps']} steps on 100 % of the training images of {len(tasks)} tasks, seed {s['seed']}.",
        f"- Every {s['every']} steps ({len(result['measurements'])} measurements): a fresh augmented training batch of "
        f"{s['probe_batch']} images per task; for every task i, the backbone takes one plain gradient step on "
        "task i's loss alone at the current learning rate (the paper's lookahead), and every task j's loss is "
        "measured again: Z[i, j] = 1 − L_j(after) / L_j(before) (Fifty et al. 2021, "
        "`m2dino/training/task_affinity.py`). Heads do not move.",
        "- Grouping: the partition into k groups that maximises Σ_j mean_{i in j's group, i ≠ j} Z[i, j] "
        "(a task alone scores 0), searched exhaustively.",
        "- Stability: correlation of the off-diagonal entries between the run's first and second half: "
        + (f"**{result['halves_correlation']:.2f}**." if result["halves_correlation"] is not None
           else "n/a (one measurement)."),
        "",
        "## Groupings",
        "",
        "| grouping | groups | affinity score |",
        "|---|---|---:|",
        f"| clinical (task registry) | {fmt(result['clinical']['groups'].values())} | "
        f"{result['clinical']['score']:+.2e} |",
        f"| affinity, k = {k} (as many groups as the clinical one) | {fmt(chosen['groups'])} | "
        f"{chosen['score']:+.2e} |",
        *(f"| affinity, k = {kk} | {fmt(v['groups'])} | {v['score']:+.2e} |"
          for kk, v in result["recommended"].items() if int(kk) != k and 2 <= int(kk) <= len(tasks) - 1),
        "",
        f"The k = {k} grouping is written to `task_affinity_groups.json` (`recipes/grouped.py --groups`, "
        "`benchmarks/aggregation.py --affinity-groups`).",
        "",
        "## Per task: its own step, and the task whose step helps or hurts it most",
        "",
        "| task j | Z[j, j] (its own step) | most helpful i | most harmful i |",
        "|---|---:|---|---|",
        *help_rows,
        "",
        "## What this does not show",
        "",
        "- Affinity is measured on a randomly initialised model early in training, where every task's gradient "
        "still teaches the backbone generic image features; Fifty et al. measure it on the same model they group "
        "for. Whether the grouping helps is answered by training it (`aggregation.py --affinity-groups`), not by "
        "the score above.",
        "- One run, one seed: the halves correlation above is the only estimate of its noise.",
    ]
    return "\n".join(lines) + "\n"


def write_outputs(result: dict, results_dir: Path) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "task_affinity.json").write_text(json.dumps(result, indent=1) + "\n")
    (results_dir / "task_affinity_groups.json").write_text(json.dumps(recommended_groups(result), indent=1) + "\n")
    plot(result, results_dir / "task_affinity.png")
    (results_dir / "task_affinity.md").write_text(markdown(result))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    results_dir = Path(args.study.results_dir)
    if args.report_only:
        path = results_dir / "task_affinity.json"
        if not path.is_file():
            raise SystemExit(f"benchmarks/task_affinity.py --report-only: {path} not found; measure first")
        result = json.loads(path.read_text())
    else:
        result = measure(args, argv)
    write_outputs(result, results_dir)
    print((results_dir / "task_affinity.md").read_text())


if __name__ == "__main__":
    main()
