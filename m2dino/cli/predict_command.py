"""``m2dino predict``: overlay PNGs and prediction JSONs (original pixels) for images and folders."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict images or folders with a model: an overlay PNG and a JSON per image",
        description="Run an M2DINO model (local folder, zoo name or Hub id) on images and folders of images (searched "
                    "recursively). Per image, OUT gets <name>_overlay.png (every chosen task drawn on the scan) "
                    "and <name>.json (the predictions in the image's original pixels; masks as COCO RLE).")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--model", required=True,
                        help="model folder, zoo name (m2dino models) or Hub id (org/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    which = parser.add_mutually_exclusive_group()
    # Repeatable rather than nargs="+", which would swallow the image paths that follow it.
    which.add_argument("--task", action="append", metavar="TASK",
                       help="a task id to predict; repeat it (--task a --task b) or separate ids with commas")
    which.add_argument("--all", action="store_true", help="predict every task of the model")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)")
    parser.add_argument("--tile-width", type=int, default=None,
                        help="scale each task's tile to this width in the overlay (default: the image's own size)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def chosen_tasks(task_ids: list[str], task: list[str] | None, every: bool) -> list[str]:
    """``--task`` as given, every task for ``--all``, and the only task of a one-task model by default."""
    if task:
        return list(dict.fromkeys(t.strip() for entry in task for t in entry.split(",") if t.strip()))
    if every or len(task_ids) == 1:
        return list(task_ids)
    raise ValueError(f"the model has {len(task_ids)} tasks ({', '.join(task_ids)}): "
                     "choose with --task TASK (repeatable) or use --all")


def run(args: argparse.Namespace) -> int:
    from ..limits import positive_int
    from ..models import M2DINO
    from ..visualize.writer import check_writable, plan_jobs, write_predictions
    from .device import resolve_device

    # sizes, inputs, the output folder and the device fail before the model loads
    positive_int("--batch-size", args.batch_size, "batch_size")
    if args.tile_width is not None:
        positive_int("--tile-width", args.tile_width, "tile_width")
    plan_jobs(args.inputs, args.out)
    check_writable(args.out)
    device = resolve_device(args.device)
    model = M2DINO.from_pretrained(args.model, revision=args.revision, device=device)
    tasks = chosen_tasks(model.task_ids, args.task, args.all)
    report = write_predictions(model, args.inputs, args.out, tasks, batch_size=args.batch_size,
                               progress=not args.quiet, tile_width=args.tile_width)
    count = len(report.written)
    print(f"wrote an overlay and a JSON for {count} image{'s' if count != 1 else ''} to {args.out} "
          f"({', '.join(tasks)})")
    if report.unreadable:
        reasons = "; ".join(report.unreadable.values())
        raise ValueError(f"{len(report.unreadable)} of {len(report.written) + len(report.unreadable)} images "
                         f"could not be read (the others were written): {reasons}")
    return 0
