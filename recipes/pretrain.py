"""Thin wrapper so `accelerate launch recipes/pretrain.py` works from a source checkout; the recipe itself
is `m2dino.recipes.pretrain` (`python -m m2dino.recipes.pretrain`, `accelerate launch -m m2dino.recipes.pretrain`)."""

import sys

from m2dino.recipes.flags import cli_main
from m2dino.recipes.pretrain import main

if __name__ == "__main__":
    sys.exit(cli_main(main))
