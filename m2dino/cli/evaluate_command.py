"""``m2dino evaluate``: run a model over an FMC_UIA root, write the submission folder, score it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..limits import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="predict an FMC_UIA root with a model, write the submission and score it",
        description="Batched inference of an M2DINO model (local folder, zoo name or Hub id) over an FMC_UIA root; "
                    "writes OUT/submission (the challenge's format) and OUT/metrics.json + OUT/metrics.md.")
    parser.add_argument("--model", required=True,
                        help="model folder, zoo name (m2dino models) or Hub id (org/name), or the CNN partner folder "
                             "of a cps run (OUT/partner)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--data", required=True, type=Path, help="FMC_UIA root with csv_files/")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="evaluate only these task ids")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.inference import evaluate_fmc_root  # deferred: torch loads only when a model runs
    from ..models import M2DINO
    from .device import resolve_device

    positive_int("--batch-size", args.batch_size, "batch_size")  # before the model loads
    device = resolve_device(args.device)  # "auto": cuda when available; a missing GPU is one line naming --device
    from ..training.semi.partner import CNNPartner, is_partner_folder

    if is_partner_folder(args.model):
        model = CNNPartner.from_pretrained(args.model).to(device)
    else:
        model = M2DINO.from_pretrained(args.model, revision=args.revision, device=device)
    if args.tasks:
        for task in args.tasks:
            model.task_spec(task)  # a task the model lacks is an error before any work
    result = evaluate_fmc_root(model, args.data, args.out, args.tasks, args.batch_size, progress=not args.quiet)
    metrics, written, skipped = result.metrics, result.submission, result.tasks_without_head
    json_path, report_path = result.files
    if not args.quiet:
        if skipped:
            print("no head in the model for: " + ", ".join(f"{t} ({n} images)" for t, n in sorted(skipped.items())))
        if written.skipped:
            print(f"{len(written.skipped)} predictions had nothing to write (see metrics.md problems)")
        print(json.dumps(metrics["summary"].get("by_type", {}), indent=1))
        print(f"wrote {written.root}, {json_path} and {report_path}")
    return 0
