"""Unified recipe: ONE M2DINO model for all selected tasks.

    accelerate launch -m m2dino.recipes.unified                 # the embedded default: synthetic 27-task suite
    accelerate launch -m m2dino.recipes.unified --data /data/FMC_UIA/train --backbone S \
        --pretrained timm/vit_small_patch16_dinov3.lvd1689m --moe-blocks 8,9,10,11 --num-experts 8 --top-k 2
    python -m m2dino.recipes.unified --moe-blocks "" --steps 2000 --affinity-every 50   # which tasks to group
"""

import argparse
import json
import sys
from pathlib import Path

from ..training.engine import AFFINITY_OUTPUTS
from .common import (EXIT_INTERRUPTED, RunSummary, build_parser, cli_main, load_data, plan_groups, run_one,
                     selected_tasks, write_summary)


def main(argv=None) -> int:
    return run("unified", __doc__, argv)


def run(recipe: str, description: str, argv=None) -> int:
    """One model for all selected tasks (the unified and semi-supervised recipes)."""
    args = build_parser(recipe, description).parse_args(argv)
    data = load_data(args)
    tasks = selected_tasks(args, data)
    output_dir = Path(args.output_dir)
    tracker = affinity_tracker(args, data, tasks)
    result = run_one(args, data, tasks, output_dir, step_callback=tracker)
    if tracker is not None and not result.interrupted:
        write_affinity(tracker, args, tasks, output_dir)
    if result.interrupted:
        print(f"interrupted at step {result.steps_done}; resume with --resume latest --output-dir {output_dir}")
        return EXIT_INTERRUPTED
    title = "Unified model" if recipe == "unified" else "Semi-supervised model"
    table = write_summary(output_dir, [RunSummary("unified", tasks, result)], title)
    print(table)
    model_dir = result.output_dir  # OUTPUT/stage2 after --two-stage-steps
    print(f"\nmodel: {model_dir} (M2DINO.from_pretrained), best: {model_dir / 'best'}, log: {model_dir / 'log.jsonl'}")


AFFINITY_LOG, AFFINITY_REPORT, AFFINITY_GROUPS = AFFINITY_OUTPUTS


def affinity_tracker(args: argparse.Namespace, data, tasks: list[str]):
    """The task-affinity measurement of ``--affinity-every`` (None when off)."""
    if not getattr(args, "affinity_every", 0):
        return None
    from ..training.task_affinity import AffinityTracker

    if args.affinity_every >= args.steps:
        raise ValueError(f"--affinity-every {args.affinity_every}: no measurement within --steps {args.steps}")
    if args.affinity_groups is not None and not 1 <= args.affinity_groups <= len(tasks):
        raise ValueError(f"--affinity-groups {args.affinity_groups}: expected 1..{len(tasks)} (the selected tasks)")
    return AffinityTracker(data.restrict(tasks).train, args.affinity_every, args.batch_size, args.seed,
                           log=Path(args.output_dir) / AFFINITY_LOG, resume=args.resume is not None)


def write_affinity(tracker, args: argparse.Namespace, tasks: list[str], output_dir: Path) -> None:
    """OUTPUT/task_affinity.json (matrix, measurements, groupings) and the recommended grouping as a
    ``--groups`` file, OUTPUT/task_affinity_groups.json (written by the main process only)."""
    from accelerate import PartialState

    from ..training.task_affinity import recommended_groups

    if not PartialState().is_main_process:
        return
    report = tracker.report(plan_groups(argparse.Namespace(groups=None), tasks))
    groups = recommended_groups(report, args.affinity_groups)
    (output_dir / AFFINITY_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    (output_dir / AFFINITY_GROUPS).write_text(json.dumps(groups, indent=1) + "\n")
    print(f"task affinity: {len(report['measurements'])} measurements; recommended grouping "
          f"{output_dir / AFFINITY_GROUPS}: " + "; ".join(", ".join(g) for g in groups.values()))


if __name__ == "__main__":
    sys.exit(cli_main(main))
