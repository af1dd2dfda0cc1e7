"""Thin wrapper so `accelerate launch recipes/grouped.py` works from a source checkout; the recipe itself
is `m2dino.recipes.grouped` (`python -m m2dino.recipes.grouped`, `accelerate launch -m m2dino.recipes.grouped`)."""

import sys

from m2dino.recipes.flags import cli_main
from m2dino.recipes.grouped import main

if __name__ == "__main__":
    sys.exit(cli_main(main))
