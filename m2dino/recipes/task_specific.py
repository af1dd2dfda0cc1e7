"""Task-specific recipe: one M2DINO model per task (all selected tasks in turn, or --task).

    accelerate launch -m m2dino.recipes.task_specific --task fetal_head
"""

import sys

from .flags import cli_main, parse_recipe, run_training


def main(argv=None) -> int:
    return run_training(*parse_recipe("task_specific", __doc__, argv))


if __name__ == "__main__":
    sys.exit(cli_main(main))
