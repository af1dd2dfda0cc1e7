"""Thin wrapper so `accelerate launch recipes/task_specific.py` works from a source checkout; the recipe itself
is `m2dino.recipes.task_specific` (`python -m m2dino.recipes.task_specific`,
`accelerate launch -m m2dino.recipes.task_specific`)."""

import sys

from m2dino.recipes.flags import cli_main
from m2dino.recipes.task_specific import main

if __name__ == "__main__":
    sys.exit(cli_main(main))
