"""``m2dino score``: score any submission folder against an FMC_UIA root."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..evaluation.problems import PROBLEM_KINDS
from ..evaluation.scoring.fmc_root import score_fmc_submission
from ..evaluation.scoring.per_submission import write_metrics
from ..evaluation.scoring.per_task import check_nsd_tolerance
from ..evaluation.summary import ADDITIONAL_METRICS, HEADLINE_METRICS
from ..tasks import load_group_mapping

EXIT_INCOMPLETE = 3   # the scores were written, but some predictions were missing or invalid


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="score a submission folder against an FMC_UIA root",
        description="Score a submission folder (the challenge's three JSON files + Segmentation PNGs) against the "
                    "ground truth of an FMC_UIA root. Writes metrics.json in the challenge's structure plus a "
                    "'summary', and a markdown report beside it.")
    parser.add_argument("--data", required=True, type=Path, help="FMC_UIA root (csv_files/ and the images and masks)")
    parser.add_argument("--pred", required=True, type=Path, help="submission folder")
    parser.add_argument("--out", required=True, type=Path, help="metrics JSON to write; the .md report goes beside it")
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="score only these task ids")
    parser.add_argument("--nsd-tolerance", type=float, default=2.0, metavar="PX",
                        help="tolerance of the normalised surface Dice, in pixels (default: 2)")
    parser.add_argument("--groups", type=Path, metavar="FILE",
                        help="JSON/YAML {group: [task ids]} replacing the registry's clinical groups in the summary")
    parser.add_argument("--allow-missing", action="store_true",
                        help="exit 0 even when predictions are missing or invalid (they still count as failures "
                             "in the summary's strict values)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary on stdout")
    parser.set_defaults(func=run)


def _summary_lines(metrics: dict) -> list[str]:
    lines = []
    for kind, means in metrics["summary"]["by_type"].items():
        names = (*HEADLINE_METRICS[kind], *ADDITIONAL_METRICS.get(kind, ()))
        values = ", ".join(f"{name} {means[name]:.4f}" for name in names if not math.isnan(means[name]))
        lines.append(f"{kind}: {means['num_tasks']} task(s), {means['num_samples']} image(s): {values or '—'}")
    totals = {k: sum(p[k] for p in metrics["summary"]["problems"].values()) for k in PROBLEM_KINDS}
    if any(totals.values()):
        lines.append("problems: " + ", ".join(f"{v} {k}" for k, v in totals.items() if v) + " (see the report)")
    return lines


def run(args: argparse.Namespace) -> int:
    check_nsd_tolerance(args.nsd_tolerance, "--nsd-tolerance")  # before any file is read
    groups = None
    if args.groups is not None:
        groups = {task: group for group, ids in load_group_mapping(args.groups).items() for task in ids}
    metrics = score_fmc_submission(args.data, args.pred, tasks=args.tasks, nsd_tolerance=args.nsd_tolerance,
                                   groups=groups, progress=not args.quiet)
    json_path, report_path = write_metrics(metrics, args.out)
    if not args.quiet:
        print("\n".join(_summary_lines(metrics)))
        print(f"wrote {json_path} and {report_path}")
    if not metrics["summary"]["complete"] and not args.allow_missing:
        failed = sum(p["missing"] + p["invalid"] for p in metrics["summary"]["problems"].values())
        print(f"m2dino score: {failed} prediction(s) missing or invalid (scored as failures in the summary; "
              "see the report); pass --allow-missing to exit 0 anyway", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0
