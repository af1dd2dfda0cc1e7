"""Pretrain recipe: DINOv3-style self-distillation of the backbone on unlabelled ultrasound.

Student and EMA teacher, two global + N local crops inside the scan's field of view, DINO and iBOT
losses with Sinkhorn-Knopp targets, KoLeo, optional Gram anchoring. Writes OUTPUT/backbone.safetensors
(timm layout, with a card), usable as ``--pretrained`` in every recipe.

    accelerate launch -m m2dino.recipes.pretrain --data /scans/unlabelled fmc:/data/FMC_UIA/train \
        --backbone S --pretrained timm/vit_small_patch16_dinov3.lvd1689m --steps 20000 --gram-weight 1
    python -m m2dino.recipes.unified --backbone S --pretrained runs/pretrain/backbone.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..training.checkpoint import latest_checkpoint
from ..training.pretrain import (
    CropConfig,
    LossConfig,
    PretrainConfig,
    PretrainTrainer,
    TeacherCollapseError,
)
from ..training.pretrain.sources import unlabeled_sources
from .common import (
    EXIT_INTERRUPTED,
    EXIT_USER_ERROR,
    _HelpFormatter,
    backbone_for,
    cli_main,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m m2dino.recipes.pretrain", description=__doc__,
                                     formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", nargs="+", required=True,
                      help="unlabelled images: FOLDER, fmc:ROOT or NAME:PATH (a public dataset's train split)")
    data.add_argument("--held-out", nargs="+", default=[],
                      help="FOLDER or fmc:ROOT of validation/test images: none of them may be pretrained on "
                           "(same file or same bytes: an error names them)")
    data.add_argument("--num-workers", type=int, default=0, help="DataLoader workers making the crops")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=None, help="S, S+, B, L, H+, mini, test or a full name (default: the "
                                                        "size of --pretrained weights, else mini)")
    model.add_argument("--pretrained", default="none",
                       help="starting backbone: a timm or transformers Hub id, a .safetensors file, or 'none'")
    model.add_argument("--drop-path", type=float, default=0.0)
    model.add_argument("--layerscale-init", type=float, default=None,
                       help="LayerScale of a random-init backbone (default 0.1, CaiT's value for up to 18 blocks: "
                            "at timm's 1e-5 a random ViT's CLS token ignores the image and the DINO targets stay "
                            "uniform); a --pretrained start keeps its own")
    crops = parser.add_argument_group("crops")
    crops.add_argument("--global-size", type=int, default=224)
    crops.add_argument("--local-size", type=int, default=96)
    crops.add_argument("--local-crops", type=int, default=8)
    loss = parser.add_argument_group("self-distillation")
    loss.add_argument("--prototypes", type=int, default=8192, help="DINO head prototypes")
    loss.add_argument("--ibot-prototypes", type=int, default=8192)
    loss.add_argument("--head-hidden", type=int, default=2048)
    loss.add_argument("--head-bottleneck", type=int, default=256)
    loss.add_argument("--ibot-weight", type=float, default=1.0)
    loss.add_argument("--koleo-weight", type=float, default=0.1)
    loss.add_argument("--gram-weight", type=float, default=0.0,
                      help="Gram anchoring to a frozen copy of the starting backbone (0 = off)")
    loss.add_argument("--teacher-temp", type=float, nargs=2, default=(0.04, 0.07), metavar=("START", "END"))
    loss.add_argument("--teacher-temp-warmup", type=int, default=300, help="steps")
    loss.add_argument("--momentum", type=float, nargs=2, default=(0.992, 1.0), metavar=("START", "END"),
                      help="teacher EMA momentum, cosine from START to END")
    loss.add_argument("--freeze-prototypes-steps", type=int, default=0,
                      help="keep the DINO and iBOT prototypes fixed for this many steps (DINO's frozen last layer)")
    loss.add_argument("--collapse-patience", type=int, default=100,
                      help="stop after this many steps in a row with a collapsed teacher")
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=16, help="images per process per step")
    train.add_argument("--lr", type=float, default=5e-4)
    train.add_argument("--warmup-steps", type=int, default=50)
    train.add_argument("--weight-decay", type=float, default=0.04)
    train.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16", "fp16"])
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--log-every", type=int, default=10)
    train.add_argument("--resume", default=None, help="a checkpoint folder, or 'latest' in the output folder")
    train.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--output-dir", default="runs/pretrain")
    train.add_argument("--no-progress", action="store_true")
    return parser


def pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    pretrained = None if args.pretrained in (None, "", "none") else args.pretrained
    if pretrained and args.layerscale_init is not None:
        raise ValueError("--layerscale-init applies to a random-init backbone; --pretrained weights keep their own")
    backbone, overrides = backbone_for(args)
    return PretrainConfig(
        output_dir=args.output_dir, backbone=backbone, backbone_overrides=overrides,
        pretrained=pretrained, data=list(args.data),
        layerscale_init=None if pretrained else (0.1 if args.layerscale_init is None else args.layerscale_init),
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, drop_path_rate=args.drop_path, teacher_temperature=tuple(args.teacher_temp),
        teacher_temperature_warmup=args.teacher_temp_warmup, momentum=tuple(args.momentum),
        mixed_precision=args.mixed_precision, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        collapse_patience=args.collapse_patience, freeze_prototypes_steps=args.freeze_prototypes_steps,
        seed=args.seed, num_workers=args.num_workers,
        crops=CropConfig(global_size=args.global_size, local_size=args.local_size, local_crops=args.local_crops),
        loss=LossConfig(prototypes=args.prototypes, ibot_prototypes=args.ibot_prototypes, head_hidden=args.head_hidden,
                        head_bottleneck=args.head_bottleneck, ibot_weight=args.ibot_weight,
                        koleo_weight=args.koleo_weight, gram_weight=args.gram_weight))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = pretrain_config(args)
    output_dir = Path(args.output_dir)
    resume = args.resume
    if resume == "latest" and latest_checkpoint(output_dir / "checkpoints") is None:
        print(f"--resume latest: no checkpoint in {output_dir / 'checkpoints'}, starting this run from scratch")
        resume = None
    source = unlabeled_sources(args.data)
    if args.held_out:
        source = source.without(unlabeled_sources(args.held_out).sources)
    trainer = PretrainTrainer(source, config, resume=resume, overwrite=args.overwrite, progress=not args.no_progress)
    try:
        exported = trainer.train()
    except TeacherCollapseError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    if trainer.counters["step"] < config.steps:
        print(f"interrupted at step {trainer.counters['step']}; resume with --resume latest --output-dir {output_dir}")
        return EXIT_INTERRUPTED
    if exported is not None:
        print(f"backbone: {exported} ({len(source)} images, {config.steps} steps); use it with "
              f"--pretrained {exported} --backbone {config.backbone}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))
