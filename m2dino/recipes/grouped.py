"""Clinically grouped recipe: one M2DINO model per clinical group.

    accelerate launch -m m2dino.recipes.grouped                       # registry groups, synthetic data
    accelerate launch -m m2dino.recipes.grouped --groups my_groups.yaml --data /data/FMC_UIA/train
"""

import sys
from pathlib import Path

from .common import (EXIT_INTERRUPTED, RunSummary, build_parser, cli_main, load_data, plan_groups, run_one,
                     selected_tasks, write_summary)


def main(argv=None) -> int:
    args = build_parser("grouped", __doc__).parse_args(argv)
    data = load_data(args)
    groups = plan_groups(args, selected_tasks(args, data))
    output_dir = Path(args.output_dir)
    runs = []
    for index, (group, tasks) in enumerate(groups.items(), 1):
        print(f"[{index}/{len(groups)}] group {group}: {', '.join(tasks)}")
        result = run_one(args, data, tasks, output_dir / group)
        if result.interrupted:
            print(f"interrupted in group {group}; rerun with --resume latest to continue that group")
            return EXIT_INTERRUPTED
        runs.append(RunSummary(group, tasks, result))
    print(write_summary(output_dir, runs, "Clinically grouped models"))


if __name__ == "__main__":
    sys.exit(cli_main(main))
