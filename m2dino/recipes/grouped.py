"""Clinically grouped recipe: one M2DINO model per clinical group.

    accelerate launch -m m2dino.recipes.grouped                       # registry groups, synthetic data
    accelerate launch -m m2dino.recipes.grouped --groups my_groups.yaml --data /data/FMC_UIA/train
"""

import sys

from .flags import cli_main, parse_recipe, run_training


def main(argv=None) -> int:
    return run_training(*parse_recipe("grouped", __doc__, argv))


if __name__ == "__main__":
    sys.exit(cli_main(main))
