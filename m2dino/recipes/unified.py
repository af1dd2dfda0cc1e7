"""Unified recipe: ONE M2DINO model for all selected tasks.

    accelerate launch -m m2dino.recipes.unified                 # the embedded default: synthetic 27-task suite
    accelerate launch -m m2dino.recipes.unified --data /data/FMC_UIA/train --backbone S \
        --pretrained timm/vit_small_patch16_dinov3.lvd1689m --moe-blocks 8,9,10,11 --num-experts 8 --top-k 2
    python -m m2dino.recipes.unified --moe-blocks "" --steps 2000 --affinity-every 50   # which tasks to group
"""

import sys

from .flags import cli_main, parse_recipe, run_training


def main(argv=None) -> int:
    return run("unified", __doc__, argv)


def run(recipe: str, description: str, argv=None) -> int:
    """One model for all selected tasks (the unified and semi-supervised recipes)."""
    return run_training(*parse_recipe(recipe, description, argv))


if __name__ == "__main__":
    sys.exit(cli_main(main))
