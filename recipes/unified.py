"""Thin wrapper so `accelerate launch recipes/unified.py` works from a source checkout; the recipe itself
is `m2dino.recipes.unified` (`python -m m2dino.recipes.unified`, `accelerate launch -m m2dino.recipes.unified`)."""

import sys

from m2dino.recipes.flags import cli_main
from m2dino.recipes.unified import main

if __name__ == "__main__":
    sys.exit(cli_main(main))
