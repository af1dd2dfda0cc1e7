"""Semi-supervised recipe: ONE M2DINO model for the selected tasks, from few labels and many unlabelled scans.

The unified recipe with ``--semi`` required. The same flags work on the unified and grouped recipes.

    python -m m2dino.recipes.semi_supervised --data hc18:../shared/data/hc18 --tasks fetal_head \\
        --data-fraction 0.05 --unlabeled rest --semi fixmatch --image-size 128
    accelerate launch -m m2dino.recipes.semi_supervised --data /data/FMC_UIA/train --unlabeled /scans/unlabelled \\
        --semi cps --partner resnet34 --backbone S --pretrained timm/vit_small_patch16_dinov3.lvd1689m
"""

import sys

from .flags import cli_main
from .unified import run


def main(argv=None) -> int:
    return run("semi_supervised", __doc__, argv)


if __name__ == "__main__":
    sys.exit(cli_main(main))
