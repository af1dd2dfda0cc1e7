"""The recipes' command-line flags: the one place where argparse turns into typed run configs.

Every default shown here is the config dataclasses' own (`RunConfig()`, `PretrainConfig()`), so a
flag and a YAML field can never disagree about it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..data.errors import error_line
from ..training.engine import NonFiniteLossError
from ..training.pretrain import (
    CropConfig,
    LossConfig,
    PretrainConfig,
    TeacherCollapseError,
)
from ..training.semi.semi_config import METHODS, SemiConfig
from ..training.train_config import CLASS_BALANCE, DISTRIBUTED, MIXED_PRECISION, TrainSettings
from .building import backbone_for
from .config_io import apply_overrides, config_from_dict, config_to_yaml, read_yaml_mapping
from .presets import get_preset, presets_table
from .pretraining import pretrain
from .run_config import (
    ROUTINGS,
    UNLABELED_OVERLAP,
    DataSettings,
    ModelSettings,
    RunConfig,
)
from .runner import train

# Exit status of a run stopped by SIGTERM after writing its checkpoint (128 + SIGTERM, as a shell reports a
# terminated job), so a scheduler does not take it for a finished one; user errors exit with 2.
EXIT_INTERRUPTED = 143
EXIT_USER_ERROR = 2


@dataclass
class LaunchOptions:
    """How to start a run, as opposed to what it trains (not part of its config)."""

    resume: str | None = None
    overwrite: bool = False
    allow_config_change: bool = False
    progress: bool = True

    def as_kwargs(self) -> dict:
        return vars(self).copy()


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default unless its help already states one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default" in text else super()._get_help_string(action)


def add_launch_arguments(parser: argparse.ArgumentParser, what: str = "run") -> None:
    """--resume, --overwrite, --allow-config-change, --no-progress (see `LaunchOptions`)."""
    group = parser.add_argument_group("launch")
    group.add_argument("--resume", default=None, help="a checkpoint folder, or 'latest' in the output folder")
    group.add_argument("--allow-config-change", action="store_true",
                       help="resume even if the config differs from the checkpoint's (the changes are recorded in the "
                            "saved config and model card)")
    group.add_argument("--overwrite", action="store_true",
                       help=f"start a new {what} in a non-empty output folder, removing the previous run's outputs")
    group.add_argument("--no-progress", action="store_true")


def launch_options(args: argparse.Namespace) -> LaunchOptions:
    return LaunchOptions(resume=args.resume, overwrite=args.overwrite,
                         allow_config_change=getattr(args, "allow_config_change", False),
                         progress=not args.no_progress)


# ----------------------------------------------------------------------------------- training recipes
def build_parser(recipe: str, description: str | None = None) -> argparse.ArgumentParser:
    """The flags every training recipe shares (plus the recipe's own); ``description`` is the recipe
    module's docstring."""
    d, m, t = DataSettings(), ModelSettings(), RunConfig().train
    parser = argparse.ArgumentParser(prog=f"python -m m2dino.recipes.{recipe}", description=description,
                                     formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", nargs="+", default=d.sources,
                      help="'synthetic', an FMC_UIA root, or NAME:PATH (hc18, african_planes, usgra, busi, psfhs, "
                           "pocus, mmotu, ddti, folder); several are merged (each task from one source)")
    data.add_argument("--val-data", default=d.val, help="FMC_UIA root of the validation split (else 20%% held out)")
    data.add_argument("--tasks", nargs="+", default=d.tasks, help="task ids (default: every task in the data)")
    data.add_argument("--synthetic-per-task", type=int, default=d.synthetic_per_task)
    data.add_argument("--data-fraction", type=float, default=d.fraction,
                      help="use this fraction of each task's training data")
    data.add_argument("--num-workers", type=int, default=d.num_workers,
                      help="DataLoader worker processes decoding and augmenting (default: CPU cores per process - 1, "
                           "at most 8; 0 = in the training process); batches are identical for any number")
    data.add_argument("--cache-dir", default=d.cache_dir,
                      help="resize each training image once to --image-size and keep it here (memory-mapped uint8; "
                           "rebuilt when a source changes; prebuild with `m2dino data cache ROOT --size N`)")
    data.add_argument("--skip-bad-samples", action="store_true",
                      help="replace a missing/unreadable training image by the next one of its task and log it, "
                           "instead of stopping the run")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=m.backbone,
                       help="S, S+, B, L, H+, mini, test or a full name (default: the size of --pretrained "
                            "weights, else mini)")
    model.add_argument("--pretrained", default="none",
                       help="backbone weights: a zoo backbone name (`m2dino models --kind backbone`), a timm or "
                            "transformers Hub id, a .safetensors file, or 'none'")
    model.add_argument("--moe-blocks", default=",".join(map(str, m.moe_blocks)),
                       help="comma-separated block indices (negative = from the end); '' for a dense model")
    model.add_argument("--num-experts", type=int, default=m.num_experts)
    model.add_argument("--top-k", type=int, default=m.top_k)
    model.add_argument("--routing", default=m.routing, choices=ROUTINGS)
    model.add_argument("--image-size", type=int, default=m.image_size)
    model.add_argument("--decoder-features", type=int, default=m.decoder_features)
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=t.steps, help="optimizer steps per model")
    train.add_argument("--batch-size", type=int, default=t.batch_size)
    train.add_argument("--grad-accum", type=int, default=t.grad_accum)
    train.add_argument("--lr", type=float, default=t.lr, help="heads, routers, task embeddings")
    train.add_argument("--backbone-lr", type=float, default=t.backbone_lr)
    train.add_argument("--layer-decay", type=float, default=t.layer_decay)
    train.add_argument("--warmup-steps", type=int, default=t.warmup_steps)
    train.add_argument("--alpha", type=float, default=t.alpha,
                       help="task sampling ∝ n_task^alpha (0 uniform, 1 proportional)")
    train.add_argument("--loss-weighting", default=t.loss_weighting, choices=["equal", "uncertainty"])
    train.add_argument("--class-balance", default=t.class_balance, choices=CLASS_BALANCE,
                       help="classification tasks: draw classes equally often (sampling) or weigh the loss (loss)")
    train.add_argument("--class-balance-beta", type=float, default=t.class_balance_beta, metavar="BETA",
                       help="with --class-balance loss: weights (1-β)/(1-β^n_class); 1 = inverse frequency")
    train.add_argument("--label-smoothing", type=float, default=t.label_smoothing, metavar="EPS",
                       help="classification targets (1-EPS)·one-hot + EPS/classes")
    train.add_argument("--lora", type=int, default=t.lora_rank, metavar="R",
                       help="LoRA rank on attention and MLP/experts")
    train.add_argument("--freeze-backbone", action="store_true", help="train heads and routers only")
    train.add_argument("--mixed-precision", default=t.mixed_precision, choices=MIXED_PRECISION,
                       help="auto: bf16 on a GPU that supports it, else fp32; bf16 on a CPU without native bf16 "
                            "(AMX-BF16, AVX512-BF16) warns and trains in fp32")
    train.add_argument("--compile", action="store_true",
                       help="torch.compile the training step (slow first steps, one compilation per task; where "
                            "torch cannot compile, a message says why and training goes on eager)")
    train.add_argument("--distributed", default=t.distributed, choices=DISTRIBUTED,
                       help="with several processes (torchrun, accelerate launch): ddp keeps a model replica per "
                            "process, fsdp shards weights, gradients and optimizer state across them")
    train.add_argument("--eval-every", type=int, default=t.eval_every)
    train.add_argument("--checkpoint-every", type=int, default=t.checkpoint_every)
    train.add_argument("--log-every", type=int, default=t.log_every, help="steps between JSONL/tracker log lines")
    train.add_argument("--seed", type=int, default=t.seed)
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice; 1 is often faster for small models)")
    train.add_argument("--output-dir", default=f"runs/{recipe}")
    add_launch_arguments(parser)
    add_semi_arguments(parser, required=recipe == "semi_supervised")
    if recipe == "grouped":
        parser.add_argument("--groups", default=None, metavar="FILE",
                            help="JSON or YAML file mapping each group to its task ids, one line per group in YAML, "
                                 "e.g. 'heads: [fetal_head, head_symphysis_multi]' (default: the registry's "
                                 "clinical groups)")
    if recipe == "task_specific":
        parser.add_argument("--task", default=None, help="train only this task")
    if recipe == "unified":
        affinity = parser.add_argument_group("task affinity (which tasks to train together)")
        affinity.add_argument("--affinity-every", type=int, default=0, metavar="N",
                              help="every N steps, measure the lookahead inter-task affinity (Fifty et al. 2021) "
                                   "and write OUTPUT/task_affinity.json and the recommended grouping "
                                   "OUTPUT/task_affinity_groups.json for recipes/grouped.py --groups (0: off)")
        affinity.add_argument("--affinity-groups", type=int, default=None, metavar="K",
                              help="groups in the recommended grouping (default: as many as the clinical groups "
                                   "of the selected tasks)")
    return parser


def add_semi_arguments(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """Few labels: which training images are labelled, the unlabelled images and the method."""
    s = SemiConfig("cps")
    semi = parser.add_argument_group("few labels (semi-supervised; defaults per method: see m2dino.training.semi)")
    semi.add_argument("--train-images", default=None, metavar="LIST",
                      help="train on these images only (one path per line, or a CSV with an 'image' column as "
                           "`m2dino select` writes); the other training images become 'rest'")
    semi.add_argument("--unlabeled", nargs="+", default=None, metavar="SRC",
                      help="unlabelled images: FOLDER, fmc:ROOT, NAME:PATH (a dataset's train split), or 'rest' (the "
                           "training images left out by --data-fraction/--train-images)")
    semi.add_argument("--semi", choices=METHODS, required=required, default=None,
                      help="mean-teacher: EMA-teacher consistency; fixmatch: thresholded pseudo-labels from the "
                           "teacher's weak view on the strong view; cps: cross pseudo supervision with a CNN partner")
    semi.add_argument("--semi-weight", type=float, default=None, help="unlabelled loss weight λ (default: per method)")
    semi.add_argument("--semi-threshold", type=float, default=None,
                      help="pseudo-label confidence threshold (default: fixmatch 0.95, else 0)")
    semi.add_argument("--semi-rampup", type=float, default=None,
                      help="fraction of the steps over which λ ramps up (default: fixmatch 0, else 0.4)")
    semi.add_argument("--ema-momentum", type=float, default=s.ema_momentum, help="teacher EMA momentum")
    semi.add_argument("--unlabeled-ratio", type=float, default=s.unlabeled_ratio,
                      help="unlabelled images per labelled image")
    semi.add_argument("--partner", default=s.partner, help="cps: timm CNN encoder of the co-trained partner")
    semi.add_argument("--unlabeled-overlap", choices=UNLABELED_OVERLAP, default=DataSettings().unlabeled_overlap,
                      help="unlabelled images that are also validation images: stop with an error naming them, or "
                           "exclude them")
    semi.add_argument("--two-stage-steps", type=int, default=0, metavar="N",
                      help="FETUS 2026 second stage: re-initialise the classification heads and fine-tune only them "
                           "on the labelled data for N steps (0 = off); the result is saved in OUTPUT/stage2")


def run_config_from_flags(recipe: str, args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` a recipe's parsed flags describe (``semi_supervised`` is the unified recipe)."""
    if (args.semi is None) != (args.unlabeled is None) or args.unlabeled == []:
        raise ValueError("semi-supervised training needs both --semi METHOD and --unlabeled SRC ...")
    tasks = [args.task] if getattr(args, "task", None) else args.tasks
    data = DataSettings(sources=list(args.data), val=args.val_data, tasks=tasks,
                        synthetic_per_task=args.synthetic_per_task, fraction=args.data_fraction,
                        train_images=args.train_images, unlabeled=args.unlabeled,
                        unlabeled_overlap=args.unlabeled_overlap, num_workers=args.num_workers,
                        cache_dir=args.cache_dir, skip_bad_samples=args.skip_bad_samples)
    model = ModelSettings(backbone=args.backbone, pretrained=args.pretrained,
                          moe_blocks=tuple(int(b) for b in args.moe_blocks.split(",") if b.strip()),
                          num_experts=args.num_experts, top_k=args.top_k, routing=args.routing,
                          image_size=args.image_size, decoder_features=args.decoder_features)
    train = TrainSettings(steps=args.steps, batch_size=args.batch_size, grad_accum=args.grad_accum, lr=args.lr,
                          backbone_lr=args.backbone_lr, layer_decay=args.layer_decay, warmup_steps=args.warmup_steps,
                          alpha=args.alpha, loss_weighting=args.loss_weighting, class_balance=args.class_balance,
                          class_balance_beta=args.class_balance_beta, label_smoothing=args.label_smoothing,
                          lora_rank=args.lora,
                          freeze_backbone=args.freeze_backbone, mixed_precision=args.mixed_precision,
                          compile=args.compile, distributed=args.distributed,
                          eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
                          log_every=args.log_every, seed=args.seed)
    semi = None
    if args.semi is not None:
        semi = SemiConfig(args.semi, weight=args.semi_weight, threshold=args.semi_threshold,
                          rampup=args.semi_rampup, ema_momentum=args.ema_momentum,
                          unlabeled_ratio=args.unlabeled_ratio, partner=args.partner)
    return RunConfig(recipe="unified" if recipe == "semi_supervised" else recipe, output_dir=args.output_dir,
                     data=data, model=model, train=train, semi=semi, groups=getattr(args, "groups", None),
                     affinity_every=getattr(args, "affinity_every", 0),
                     affinity_groups=getattr(args, "affinity_groups", None),
                     two_stage_steps=args.two_stage_steps, threads=args.threads)


def parse_recipe(recipe: str, description: str | None, argv: Sequence[str] | None) -> tuple[RunConfig, LaunchOptions]:
    args = build_parser(recipe, description).parse_args(argv)
    return run_config_from_flags(recipe, args), launch_options(args)


# ----------------------------------------------------------------------------------- pretraining
def build_pretrain_parser(description: str | None = None) -> argparse.ArgumentParser:
    p, crop, loss = PretrainConfig(), CropConfig(), LossConfig()
    parser = argparse.ArgumentParser(prog="python -m m2dino.recipes.pretrain", description=description,
                                     formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", nargs="+", required=True,
                      help="unlabelled images: FOLDER, fmc:ROOT or NAME:PATH (a public dataset's train split)")
    data.add_argument("--held-out", nargs="+", default=[],
                      help="FOLDER or fmc:ROOT of validation/test images: none of them may be pretrained on "
                           "(same file or same bytes: an error names them)")
    data.add_argument("--num-workers", type=int, default=p.num_workers, help="DataLoader workers making the crops")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=None, help="S, S+, B, L, H+, mini, test or a full name (default: the "
                                                        "size of --pretrained weights, else mini)")
    model.add_argument("--pretrained", default="none",
                       help="starting backbone: a zoo backbone name, a timm or transformers Hub id, a .safetensors "
                            "file, or 'none'")
    model.add_argument("--drop-path", type=float, default=p.drop_path_rate)
    model.add_argument("--layerscale-init", type=float, default=None,
                       help="LayerScale of a random-init backbone (default 0.1, CaiT's value for up to 18 blocks: "
                            "at timm's 1e-5 a random ViT's CLS token ignores the image and the DINO targets stay "
                            "uniform); a --pretrained start keeps its own")
    crops = parser.add_argument_group("crops")
    crops.add_argument("--global-size", type=int, default=crop.global_size)
    crops.add_argument("--local-size", type=int, default=crop.local_size)
    crops.add_argument("--local-crops", type=int, default=crop.local_crops)
    distill = parser.add_argument_group("self-distillation")
    distill.add_argument("--prototypes", type=int, default=loss.prototypes, help="DINO head prototypes")
    distill.add_argument("--ibot-prototypes", type=int, default=loss.ibot_prototypes)
    distill.add_argument("--head-hidden", type=int, default=loss.head_hidden)
    distill.add_argument("--head-bottleneck", type=int, default=loss.head_bottleneck)
    distill.add_argument("--ibot-weight", type=float, default=loss.ibot_weight)
    distill.add_argument("--koleo-weight", type=float, default=loss.koleo_weight)
    distill.add_argument("--gram-weight", type=float, default=loss.gram_weight,
                         help="Gram anchoring to a frozen copy of the starting backbone (0 = off)")
    distill.add_argument("--teacher-temp", type=float, nargs=2, default=p.teacher_temperature,
                         metavar=("START", "END"))
    distill.add_argument("--teacher-temp-warmup", type=int, default=p.teacher_temperature_warmup, help="steps")
    distill.add_argument("--momentum", type=float, nargs=2, default=p.momentum, metavar=("START", "END"),
                         help="teacher EMA momentum, cosine from START to END")
    distill.add_argument("--freeze-prototypes-steps", type=int, default=p.freeze_prototypes_steps,
                         help="keep the DINO and iBOT prototypes fixed for this many steps (DINO's frozen last layer)")
    distill.add_argument("--collapse-patience", type=int, default=p.collapse_patience,
                         help="stop after this many steps in a row with a collapsed teacher")
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=p.steps)
    train.add_argument("--batch-size", type=int, default=p.batch_size, help="images per process per step")
    train.add_argument("--lr", type=float, default=p.lr)
    train.add_argument("--warmup-steps", type=int, default=p.warmup_steps)
    train.add_argument("--weight-decay", type=float, default=p.weight_decay)
    train.add_argument("--mixed-precision", default=p.mixed_precision, choices=["auto", "no", "bf16", "fp16"])
    train.add_argument("--checkpoint-every", type=int, default=p.checkpoint_every)
    train.add_argument("--log-every", type=int, default=p.log_every)
    train.add_argument("--seed", type=int, default=p.seed)
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--output-dir", default=p.output_dir)
    add_launch_arguments(parser, "pretraining")
    return parser


def pretrain_config_from_flags(args: argparse.Namespace) -> PretrainConfig:
    pretrained = None if args.pretrained in (None, "", "none") else args.pretrained
    if pretrained and args.layerscale_init is not None:
        raise ValueError("--layerscale-init applies to a random-init backbone; --pretrained weights keep their own")
    backbone, overrides = backbone_for(args.backbone, pretrained)
    return PretrainConfig(
        output_dir=args.output_dir, backbone=backbone, backbone_overrides=overrides,
        pretrained=pretrained, data=list(args.data), held_out=list(args.held_out),
        layerscale_init=None if pretrained else (0.1 if args.layerscale_init is None else args.layerscale_init),
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay, drop_path_rate=args.drop_path, teacher_temperature=tuple(args.teacher_temp),
        teacher_temperature_warmup=args.teacher_temp_warmup, momentum=tuple(args.momentum),
        mixed_precision=args.mixed_precision, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        collapse_patience=args.collapse_patience, freeze_prototypes_steps=args.freeze_prototypes_steps,
        seed=args.seed, num_workers=args.num_workers, threads=args.threads,
        crops=CropConfig(global_size=args.global_size, local_size=args.local_size, local_crops=args.local_crops),
        loss=LossConfig(prototypes=args.prototypes, ibot_prototypes=args.ibot_prototypes, head_hidden=args.head_hidden,
                        head_bottleneck=args.head_bottleneck, ibot_weight=args.ibot_weight,
                        koleo_weight=args.koleo_weight, gram_weight=args.gram_weight))


def parse_pretrain(description: str | None, argv: Sequence[str] | None) -> tuple[PretrainConfig, LaunchOptions]:
    args = build_pretrain_parser(description).parse_args(argv)
    return pretrain_config_from_flags(args), launch_options(args)


# ----------------------------------------------------------------------------------- YAML configs
def build_config_parser(command: str) -> argparse.ArgumentParser:
    """``m2dino train`` / ``m2dino pretrain``: a YAML config, ``--set`` overrides and the launch options."""
    what = "training run" if command == "train" else "pretraining run"
    parser = argparse.ArgumentParser(
        prog=f"m2dino {command}", formatter_class=HelpFormatter,
        description=f"Start a {what} from a YAML config (a run's own run.yaml reproduces that run). Fields left "
                    "out keep their defaults" + (" (the embedded default run: no CONFIG trains it)."
                                                 if command == "train" else "; data is required."),
        epilog=f"example: m2dino {command} run.yaml --set train.steps=500 --set model.moe_blocks=[] "
               "(a value is read as YAML: 0.5, null, [2, 3]; a comma list also works: data.tasks=fetal_head,IUGC)"
        if command == "train" else "example: m2dino pretrain --set data=[/scans] --set steps=200 --set backbone=test")
    parser.add_argument("config", nargs="?", default=None, help="YAML config file (default: all defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one field, dotted for sections (repeatable)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the complete config as YAML and exit without training")
    if command == "train":
        parser.add_argument("--preset", default=None, metavar="NAME",
                            help="start from a named, measured recipe instead of a CONFIG file (--list-presets)")
        parser.add_argument("--list-presets", action="store_true",
                            help="list the presets with their expected score and training time, and exit")
    add_launch_arguments(parser, what)
    return parser


def config_main(command: str, argv: Sequence[str] | None = None) -> int:
    """``m2dino train`` / ``m2dino pretrain`` (errors in the config raise ValueError naming the field)."""
    args = build_config_parser(command).parse_args(argv)
    if getattr(args, "list_presets", False):
        print(presets_table())
        return 0
    preset = getattr(args, "preset", None)
    if preset and args.config:
        raise ValueError(f"give a CONFIG file or --preset, not both (got {args.config} and --preset {preset})")
    source = args.config or (f"preset {preset}" if preset else "--set")
    base = read_yaml_mapping(args.config) if args.config else get_preset(preset).run if preset else {}
    values = apply_overrides(base, args.overrides)
    launch = launch_options(args)
    if command == "train":
        config = RunConfig.from_dict(values, source)
        if args.print_config:
            print(config.to_yaml(), end="")
            return 0
        return run_training(config, launch)
    config = config_from_dict(PretrainConfig, values, source)
    if args.print_config:
        print(config_to_yaml(config), end="")
        return 0
    return run_pretraining(config, launch)


# ----------------------------------------------------------------------------------- runs and exit status
def run_training(config: RunConfig, launch: LaunchOptions) -> int:
    """Train ``config``: exit status 0, or 143 when a stop request interrupted it."""
    return EXIT_INTERRUPTED if train(config, **launch.as_kwargs()).interrupted else 0


def run_pretraining(config: PretrainConfig, launch: LaunchOptions) -> int:
    """Pretrain ``config`` and report it: the exit status (interrupted: 143, a collapsed teacher: 2)."""
    try:
        outcome = pretrain(config, **launch.as_kwargs())
    except TeacherCollapseError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    if outcome.steps_done < config.steps:
        print(f"interrupted at step {outcome.steps_done}; resume with --resume latest --output-dir {config.output_dir}")
        return EXIT_INTERRUPTED
    if outcome.backbone is not None:
        print(f"backbone: {outcome.backbone} ({outcome.images} images, {config.steps} steps); use it with "
              f"--pretrained {outcome.backbone} --backbone {config.backbone}")
    return 0


def cli_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a recipe's ``main`` as a command: its exit status, and user errors (bad flags or data, a
    checkpoint that does not fit, an unwritable or full disk) as one line on stderr, not a traceback."""
    try:
        return int(main(argv) or 0)
    except (ValueError, KeyError, OSError, NonFiniteLossError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
