"""``m2dino export``: a model's tasks as ONNX files (one per task) with ``export.json`` describing them."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OPSET = 17  # m2dino.models.onnx_export.DEFAULT_OPSET (not imported: it would import torch at --help)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model's tasks to ONNX (pip install 'm2dino[onnx]')",
        description="Export tasks of an M2DINO model (folder, zoo name or Hub id) to ONNX: OUT/<task>.onnx per task "
                    "(input pixel_values, dynamic batch; the task's MoE experts fixed, so each file is a dense "
                    "model) and OUT/export.json with each file's input, preprocessing, outputs and post-processing. "
                    "Each file is checked against the torch model with onnxruntime before it is kept.")
    parser.add_argument("--model", required=True, help="model folder, zoo name (m2dino models) or Hub id (org/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--task", action="append", metavar="TASK",
                       help="a task id to export; repeat it (--task a --task b) or separate ids with commas")
    which.add_argument("--all", action="store_true", help="export every task of the model")
    parser.add_argument("--onnx", dest="out", required=True, type=Path, metavar="OUT",
                        help="output folder (created)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset to write (default: {DEFAULT_OPSET}; 14 or later)")
    parser.add_argument("--overwrite", action="store_true", help="replace files already in OUT")
    parser.set_defaults(func=run)


def requested_tasks(task: list[str] | None, every: bool) -> list[str] | None:
    """The ``--task`` ids (commas split, repeats dropped), or None for ``--all``; neither is refused."""
    if every:
        return None
    ids = list(dict.fromkeys(t.strip() for entry in task or [] for t in entry.split(",") if t.strip()))
    if not ids:
        raise ValueError("choose what to export: --task TASK (repeatable) or --all")
    return ids


def run(args: argparse.Namespace) -> int:
    # Everything that can be checked without the model fails first: the tasks asked for, the extra, the
    # opset and the named tasks' files; then the model loads and its tasks (and --all's files) are checked.
    tasks = requested_tasks(args.task, args.all)
    from ..models import M2DINO
    from ..models.onnx_export import check_exportable, check_opset, export_onnx, planned_files, require_onnx

    try:
        require_onnx()
    except ImportError as err:
        raise ValueError(str(err)) from err
    check_opset(args.opset)
    if tasks is not None:
        planned_files(args.out, tasks, args.overwrite)
    model = M2DINO.from_pretrained(args.model, revision=args.revision, device="cpu")
    tasks = check_exportable(model, model.task_ids if tasks is None else tasks)
    # A local folder is recorded by its name only (export.json holds no machine paths); a Hub id as given.
    source = Path(args.model).name if Path(args.model).exists() else args.model
    manifest = export_onnx(model, tasks, args.out, args.opset, args.overwrite, source,
                           progress=lambda task: print(f"exporting {task} ...", flush=True))
    print(f"wrote {len(tasks)} ONNX file{'s' if len(tasks) != 1 else ''} (opset {manifest['opset']}) and "
          f"export.json to {args.out}: {', '.join(entry['file'] for entry in manifest['tasks'].values())}")
    return 0
