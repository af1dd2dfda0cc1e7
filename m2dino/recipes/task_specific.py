"""Task-specific recipe: one M2DINO model per task (all selected tasks in turn, or --task).

    accelerate launch -m m2dino.recipes.task_specific --task fetal_head
"""

import sys
from pathlib import Path

from .common import (EXIT_INTERRUPTED, RunSummary, build_parser, cli_main, load_data, run_one, selected_tasks,
                     write_summary)


def main(argv=None) -> int:
    args = build_parser("task_specific", __doc__).parse_args(argv)
    if args.task:
        args.tasks = [args.task]
    data = load_data(args)
    tasks = selected_tasks(args, data)
    output_dir = Path(args.output_dir)
    runs = []
    for index, task in enumerate(tasks, 1):
        print(f"[{index}/{len(tasks)}] task {task}")
        result = run_one(args, data, [task], output_dir / task)
        if result.interrupted:
            print(f"interrupted in task {task}; rerun with --resume latest to continue it")
            return EXIT_INTERRUPTED
        runs.append(RunSummary(task, [task], result))
    print(write_summary(output_dir, runs, "Task-specific models"))


if __name__ == "__main__":
    sys.exit(cli_main(main))
