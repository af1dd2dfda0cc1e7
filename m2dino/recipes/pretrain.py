"""Pretrain recipe: DINOv3-style self-distillation of the backbone on unlabelled ultrasound.

Student and EMA teacher, two global + N local crops inside the scan's field of view, DINO and iBOT
losses with Sinkhorn-Knopp targets, KoLeo, optional Gram anchoring. Writes OUTPUT/backbone.safetensors
(timm layout, with a card), usable as ``--pretrained`` in every recipe.

    accelerate launch -m m2dino.recipes.pretrain --data /scans/unlabelled fmc:/data/FMC_UIA/train \
        --backbone S --pretrained timm/vit_small_patch16_dinov3.lvd1689m --steps 20000 --gram-weight 1
    python -m m2dino.recipes.unified --backbone S --pretrained runs/pretrain/backbone.safetensors
"""

from __future__ import annotations

import sys

from .flags import cli_main, parse_pretrain, run_pretraining


def main(argv=None) -> int:
    return run_pretraining(*parse_pretrain(__doc__, argv))


if __name__ == "__main__":
    sys.exit(cli_main(main))
