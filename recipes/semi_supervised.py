"""Thin wrapper so `accelerate launch recipes/semi_supervised.py` works from a source checkout; the recipe itself
is `m2dino.recipes.semi_supervised` (`python -m m2dino.recipes.semi_supervised`,
`accelerate launch -m m2dino.recipes.semi_supervised`)."""

import sys

from m2dino.recipes.flags import cli_main
from m2dino.recipes.semi_supervised import main

if __name__ == "__main__":
    sys.exit(cli_main(main))
