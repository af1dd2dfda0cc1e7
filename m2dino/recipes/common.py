"""What the three recipes share: flags, building a model for a set of tasks, one run, summaries.

- unified: one model for all selected tasks;
- grouped: one model per clinical group (the registry's groups or a user's JSON/YAML mapping);
- task_specific: one model per task.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.errors import error_line
from ..data.image_list import read_image_list
from ..data.loading import LoaderConfig
from ..evaluation.kinds import EVALUATIONS
from ..models import M2DINO, M2DINOConfig, resolve_backbone
from ..models.pretrained_weights import backbone_spec_for_weights
from ..tasks import get_task, load_group_mapping
from ..training.checkpoint import latest_checkpoint
from ..training.config import TrainConfig
from ..training.data_sources import TrainingData, load_training_data
from ..training.engine import NonFiniteLossError, Trainer, TrainResult
from ..training.output_check import check_output_dir, estimate_run_bytes
from ..visualize.card import add_card_example

# The embedded default: small enough to train on the 27-task synthetic suite on 2 CPU cores in minutes.
DEFAULTS = dict(data="synthetic", backbone="mini", image_size=64, batch_size=16, steps=2000, moe_blocks="2,3",
                num_experts=4, top_k=1, decoder_features=32, lr=2e-3, backbone_lr=1e-3, eval_every=1000,
                synthetic_per_task=64)
# Exit status of a run stopped by SIGTERM after writing its checkpoint (128 + SIGTERM, as a shell reports a
# terminated job), so a scheduler does not take it for a finished one; user errors exit with 2.
EXIT_INTERRUPTED = 143
EXIT_USER_ERROR = 2


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module docstring as written, and each flag's default unless its help already states one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        return text if "default" in text else super()._get_help_string(action)


def build_parser(recipe: str, description: str | None = None) -> argparse.ArgumentParser:
    """The flags every recipe shares (plus the recipe's own); ``description`` is the recipe module's docstring."""
    parser = argparse.ArgumentParser(prog=f"python -m m2dino.recipes.{recipe}", description=description,
                                     formatter_class=_HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data", nargs="+", default=[DEFAULTS["data"]],
                      help="'synthetic', an FMC_UIA root, or NAME:PATH (hc18, african_planes, usgra, busi, folder); "
                           "several are merged (each task from one source)")
    data.add_argument("--val-data", default=None, help="FMC_UIA root of the validation split (else 20%% held out)")
    data.add_argument("--tasks", nargs="+", default=None, help="task ids (default: every task in the data)")
    data.add_argument("--synthetic-per-task", type=int, default=DEFAULTS["synthetic_per_task"])
    data.add_argument("--data-fraction", type=float, default=1.0, help="use this fraction of each task's training data")
    data.add_argument("--num-workers", type=int, default=None,
                      help="DataLoader worker processes decoding and augmenting (default: CPU cores per process - 1, "
                           "at most 8; 0 = in the training process); batches are identical for any number")
    data.add_argument("--cache-dir", default=None,
                      help="resize each training image once to --image-size and keep it here (memory-mapped uint8; "
                           "rebuilt when a source changes; prebuild with `m2dino data cache ROOT --size N`)")
    data.add_argument("--skip-bad-samples", action="store_true",
                      help="replace a missing/unreadable training image by the next one of its task and log it, "
                           "instead of stopping the run")
    model = parser.add_argument_group("model")
    model.add_argument("--backbone", default=None,
                       help=f"S, S+, B, L, H+, mini, test or a full name (default: the size of --pretrained "
                            f"weights, else {DEFAULTS['backbone']})")
    model.add_argument("--pretrained", default="none",
                       help="backbone weights: a timm or transformers Hub id, a .safetensors file, or 'none'")
    model.add_argument("--moe-blocks", default=DEFAULTS["moe_blocks"],
                       help="comma-separated block indices (negative = from the end); '' for a dense model")
    model.add_argument("--num-experts", type=int, default=DEFAULTS["num_experts"])
    model.add_argument("--top-k", type=int, default=DEFAULTS["top_k"])
    model.add_argument("--routing", default="task", choices=["task", "task+token"])
    model.add_argument("--image-size", type=int, default=DEFAULTS["image_size"])
    model.add_argument("--decoder-features", type=int, default=DEFAULTS["decoder_features"])
    train = parser.add_argument_group("training")
    train.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="optimizer steps per model")
    train.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    train.add_argument("--grad-accum", type=int, default=1)
    train.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="heads, routers, task embeddings")
    train.add_argument("--backbone-lr", type=float, default=DEFAULTS["backbone_lr"])
    train.add_argument("--layer-decay", type=float, default=None)
    train.add_argument("--warmup-steps", type=int, default=50)
    train.add_argument("--alpha", type=float, default=0.5, help="task sampling ∝ n_task^alpha (0 uniform, 1 proportional)")
    train.add_argument("--loss-weighting", default="equal", choices=["equal", "uncertainty"])
    train.add_argument("--lora", type=int, default=None, metavar="R", help="LoRA rank on attention and MLP/experts")
    train.add_argument("--freeze-backbone", action="store_true", help="train heads and routers only")
    train.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16", "fp16"])
    train.add_argument("--eval-every", type=int, default=DEFAULTS["eval_every"])
    train.add_argument("--checkpoint-every", type=int, default=None)
    train.add_argument("--log-every", type=int, default=10, help="steps between JSONL/tracker log lines")
    train.add_argument("--resume", default=None, help="a checkpoint folder, or 'latest' in the output folder")
    train.add_argument("--allow-config-change", action="store_true",
                       help="resume even if flags differ from the checkpoint's (the changes are recorded in the "
                            "saved config and model card)")
    train.add_argument("--overwrite", action="store_true",
                       help="start a new run in a non-empty output folder, removing the previous run's outputs")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: torch's choice; 1 is often faster for small models)")
    train.add_argument("--output-dir", default=f"runs/{recipe}")
    train.add_argument("--no-progress", action="store_true")
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
    from ..training.semi import METHODS

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
    semi.add_argument("--ema-momentum", type=float, default=0.99, help="teacher EMA momentum")
    semi.add_argument("--unlabeled-ratio", type=float, default=1.0, help="unlabelled images per labelled image")
    semi.add_argument("--partner", default="resnet18", help="cps: timm CNN encoder of the co-trained partner")
    semi.add_argument("--unlabeled-overlap", choices=["error", "exclude"], default="error",
                      help="unlabelled images that are also validation images: stop with an error naming them, or "
                           "exclude them")
    semi.add_argument("--two-stage-steps", type=int, default=0, metavar="N",
                      help="FETUS 2026 second stage: re-initialise the classification heads and fine-tune only them "
                           "on the labelled data for N steps (0 = off); the result is saved in OUTPUT/stage2")


def _moe_blocks(text: str) -> tuple[int, ...]:
    return tuple(int(b) for b in text.split(",") if b.strip())


def check_outputs(args: argparse.Namespace) -> None:
    """Before any data is read: a new run needs an empty (or --overwrite) output folder that can be
    written and whose disk holds the model and its checkpoints (estimated from the model's size)."""
    output_dir = Path(args.output_dir)
    if args.resume is None and not args.overwrite and output_dir.is_dir() and any(output_dir.iterdir()):
        raise FileExistsError(f"output folder {output_dir} is not empty (a previous run?): pass --resume latest to "
                              "continue it, --overwrite to replace it, or another --output-dir")
    with torch.device("meta"):  # sizes only: no memory, no weights
        model = M2DINO(model_config(args, args.tasks or ["fetal_head"]))
    model_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    check_output_dir(output_dir, estimate_run_bytes(model_bytes, TrainConfig.keep_checkpoints))


def load_data(args: argparse.Namespace) -> TrainingData:
    check_outputs(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = None
    for spec in args.data:
        tasks = args.tasks if len(args.data) == 1 else None  # several sources: restrict after merging
        part = load_training_data(spec, tasks, args.image_size, args.seed,
                                  synthetic_per_task=args.synthetic_per_task,
                                  synthetic_val_per_task=max(8, args.synthetic_per_task // 3), val_data=args.val_data)
        data = part if data is None else data.merge(part)
    if len(args.data) > 1 and args.tasks:
        data = data.restrict(args.tasks)
    if args.train_images:
        images = read_image_list(args.train_images)
        if not images:
            raise ValueError(f"--train-images {args.train_images}: lists no images")
        data = data.only_images(images, f"--train-images {args.train_images}")
    return data.fraction(args.data_fraction, args.seed) if args.data_fraction < 1 else data


def semi_setup(args: argparse.Namespace, data: TrainingData):
    """(SemiConfig, UnlabeledSource) from the flags, or (None, None) for supervised training."""
    if args.semi is None and args.unlabeled is None:
        return None, None
    if args.semi is None or not args.unlabeled:
        raise ValueError("semi-supervised training needs both --semi METHOD and --unlabeled SRC ...")
    from ..data.unlabeled import UnlabeledSource
    from ..training.pretrain.sources import unlabeled_source
    from ..training.semi import SemiConfig

    config = SemiConfig(args.semi, weight=args.semi_weight, threshold=args.semi_threshold, rampup=args.semi_rampup,
                        ema_momentum=args.ema_momentum, unlabeled_ratio=args.unlabeled_ratio, partner=args.partner)
    source = None
    for spec in args.unlabeled:
        if spec == "rest":
            rest = [e for items in data.left_out.values() for e in items.items]
            if not rest:
                raise ValueError("--unlabeled rest: no training images were left out (use it with --data-fraction "
                                 "below 1 or --train-images)")
            part = UnlabeledSource.from_samples(rest, "training images left out of the labelled set")
        else:
            part = unlabeled_source(spec, "--unlabeled")
        source = part if source is None else source + part
    return config, source


def backbone_for(args: argparse.Namespace) -> tuple[str, dict]:
    """The backbone to build: ``--backbone``, else the size the pretrained weights imply, else the default.
    A transformers checkpoint's config.json decides its size and variant (e.g. q/v biases)."""
    weights = None if args.pretrained in (None, "", "none") else args.pretrained
    implied = None
    if weights is not None:
        if weights.startswith("timm/"):
            architecture = weights.split("/", 1)[1].split(".")[0]
            qkvb = architecture.endswith("_qkvb")
            implied = (architecture.removesuffix("_qkvb"), {"qkv_bias": True} if qkvb else {})
        else:
            implied = backbone_spec_for_weights(weights)
    if args.backbone is None:
        return implied or (DEFAULTS["backbone"], {})
    name = resolve_backbone(args.backbone)[0]
    if implied is not None and resolve_backbone(implied[0])[0] != name:
        raise ValueError(f"--pretrained {weights} holds a {implied[0]} backbone but --backbone is {args.backbone}; "
                         "drop --backbone to use the checkpoint's size")
    return name, implied[1] if implied else {}


def model_config(args: argparse.Namespace, tasks: Sequence[str]) -> M2DINOConfig:
    backbone, overrides = backbone_for(args)
    return M2DINOConfig(backbone=backbone, backbone_overrides=overrides, tasks=list(tasks),
                        moe_blocks=_moe_blocks(args.moe_blocks), num_experts=args.num_experts, top_k=args.top_k,
                        routing=args.routing, decoder_features=args.decoder_features, image_size=args.image_size)


def build_model(args: argparse.Namespace, tasks: Sequence[str]) -> M2DINO:
    torch.manual_seed(args.seed)
    weights = None if args.pretrained in (None, "", "none") else args.pretrained
    return M2DINO(model_config(args, tasks), backbone_weights=weights)


def train_config(args: argparse.Namespace, output_dir: Path, tasks: Sequence[str]) -> TrainConfig:
    return TrainConfig(output_dir=str(output_dir), steps=args.steps, batch_size=args.batch_size,
                       grad_accum=args.grad_accum, lr=args.lr, backbone_lr=args.backbone_lr,
                       layer_decay=args.layer_decay, warmup_steps=args.warmup_steps, alpha=args.alpha,
                       loss_weighting=args.loss_weighting, lora_rank=args.lora, freeze_backbone=args.freeze_backbone,
                       mixed_precision=args.mixed_precision, eval_every=args.eval_every,
                       checkpoint_every=args.checkpoint_every, log_every=args.log_every, seed=args.seed,
                       tasks=list(tasks))


def run_one(args: argparse.Namespace, data: TrainingData, tasks: Sequence[str], output_dir: Path,
            step_callback=None) -> TrainResult:
    subset = data.restrict(tasks)
    model = build_model(args, tasks)
    resume = args.resume
    if resume == "latest" and latest_checkpoint(output_dir / "checkpoints") is None:
        print(f"--resume latest: no checkpoint in {output_dir / 'checkpoints'}, starting this run from scratch")
        resume = None
    loading = LoaderConfig(num_workers=args.num_workers, cache_dir=args.cache_dir,
                           skip_bad_samples=args.skip_bad_samples)
    semi, unlabeled = semi_setup(args, subset)
    trainer = Trainer(model, subset.train, subset.val, train_config(args, output_dir, tasks),
                      resume=resume, progress=not args.no_progress, overwrite=args.overwrite,
                      allow_config_change=args.allow_config_change, loading=loading, semi=semi, unlabeled=unlabeled,
                      unlabeled_overlap=args.unlabeled_overlap, step_callback=step_callback)
    result = trainer.train()
    if trainer.accelerator.is_main_process and (result.output_dir / "README.md").is_file():
        add_card_example(trainer.exportable_model(), result.output_dir)  # the card shows what the model outputs
    if args.two_stage_steps and not result.interrupted:
        from ..training.two_stage import classification_stage

        result = classification_stage(trainer.exportable_model(), subset, train_config(args, output_dir, tasks),
                                      args.two_stage_steps, loading, progress=not args.no_progress,
                                      resume=args.resume is not None, overwrite=args.overwrite)
    return result


@dataclass
class RunSummary:
    name: str
    tasks: list[str]
    result: TrainResult


def task_rows(runs: Sequence[RunSummary]) -> list[dict]:
    """One row per task: the run that trained it, its type, headline metric and normalised score."""
    rows = []
    for run in runs:
        metrics = run.result.metrics
        for task in run.tasks:
            spec = get_task(task)
            evaluation = EVALUATIONS[spec.label_kind.name]
            result = metrics.get(evaluation.section, {}).get(task, {})
            headline = evaluation.headline[0]
            rows.append({"task": task, "model": run.name, "type": evaluation.section, "group": spec.group,
                         "metric": headline,
                         "value": result.get(headline), "score": run.result.scores.get(task)})
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| task | model | type | metric | value | normalised score |", "|---|---|---|---|---|---|"]
    for r in rows:
        value = "n/a" if r["value"] is None else f"{r['value']:.4f}"
        score = "n/a" if r["score"] is None else f"{r['score']:.3f}"
        lines.append(f"| {r['task']} | {r['model']} | {r['type']} | {r['metric']} | {value} | {score} |")
    scores = [r["score"] for r in rows if r["score"] is not None]
    if scores:
        lines.append(f"\nMean normalised score over {len(scores)} tasks: **{np.mean(scores):.3f}** "
                     "(DSC; (accuracy + macro F1)/2; IoU; 1 − MRE/(10% of the diagonal); 1 − MAE/mean target)")
    return "\n".join(lines)


def write_summary(output_dir: Path, runs: Sequence[RunSummary], title: str) -> str:
    rows = task_rows(runs)
    table = markdown_table(rows)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "summary.md").write_text(f"# {title}\n\n{table}\n")
    (output_dir / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    return table


def selected_tasks(args: argparse.Namespace, data: TrainingData) -> list[str]:
    return list(args.tasks) if args.tasks else list(data.train)


def plan_groups(args: argparse.Namespace, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Group → the selected tasks in it: a user's mapping (``--groups``), else each task's registry group."""
    if getattr(args, "groups", None):
        mapping = load_group_mapping(args.groups)
        unassigned = [t for t in tasks if not any(t in ids for ids in mapping.values())]
        if unassigned:
            raise ValueError(f"{args.groups}: tasks {unassigned} are in no group")
        return {g: [t for t in ids if t in tasks] for g, ids in mapping.items() if any(t in tasks for t in ids)}
    groups: dict[str, list[str]] = {}
    for task in tasks:
        groups.setdefault(get_task(task).group, []).append(task)
    return groups


def cli_main(main, argv: Sequence[str] | None = None) -> int:
    """Run a recipe's ``main`` as a command: its exit status, and user errors (bad flags or data, a
    checkpoint that does not fit, an unwritable or full disk) as one line on stderr, not a traceback."""
    try:
        return int(main(argv) or 0)
    except (ValueError, KeyError, OSError, NonFiniteLossError) as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


__all__ = ["DEFAULTS", "EXIT_INTERRUPTED", "EXIT_USER_ERROR", "RunSummary", "build_model", "build_parser", "cli_main",
           "load_data", "plan_groups", "run_one", "selected_tasks", "write_summary"]
