"""``m2dino data``: convert public datasets to the FMC layout, check an FMC root, write the synthetic suite."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

from ..data.fmc.layout import CSV_DIR
from ..limits import check_bound, finite_number, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..data.adapters import ADAPTERS

    data = subparsers.add_parser("data", help="datasets: convert, check, synthesise")
    commands = data.add_subparsers(dest="data_command", required=True)

    convert = commands.add_parser(
        "convert", help="convert a public dataset into the FMC_UIA layout (one root per split under DST)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert a public dataset, in the layout it is published in, into the FMC_UIA layout:\n"
                    "one root per split, DST/train, DST/val (and DST/test where the dataset has one).\n\n"
                    "datasets:\n" + "\n".join(f"  {name:<16}{_dataset_title(m)}" for name, m in ADAPTERS.items()),
        epilog="Options (-o) are the adapter's keyword arguments, read as JSON when they parse, e.g.\n"
               "  m2dino data convert hc18 raw/hc18 data/hc18_fmc -o seed=1\n"
               "  m2dino data convert folder raw/thyroid data/thyroid_fmc -o task=thyroid_nodule -o masks=labels\n"
               "The expected layout of each dataset: python -c \"import m2dino.data.adapters.hc18 as m; "
               "print(m.__doc__)\"")
    convert.add_argument("name", choices=list(ADAPTERS))
    convert.add_argument("src", type=Path, help="the dataset in its original layout")
    convert.add_argument("dst", type=Path, help="output folder; gets <split>/csv_files/... per split")
    convert.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE")
    convert.add_argument("--overwrite", action="store_true", help="replace existing CSVs")
    convert.set_defaults(func=_convert)

    check = commands.add_parser("check", help="validate an FMC root (or a folder of split roots) and "
                                              "print a per-task table")
    check.add_argument("root", type=Path)
    check.add_argument("--tasks", nargs="+", help="only these task ids")
    check.add_argument("--quick", action="store_true", help="index-time checks only (no pixel decoding)")
    check.set_defaults(func=_check)

    public = commands.add_parser(
        "build-public", help="the public multi-task benchmark: one FMC root (OUT/train, OUT/val, OUT/test) from "
                             "eight real datasets, with a datasheet (OUT/DATASHEET.md)",
        description="Reads hc18, african_planes and usgra from --shared and busi, ddti, psfhs, pocus and mmotu "
                    "from --src (the output of ../shared/data/get_public.sh), each in its published layout.")
    public.add_argument("--src", type=Path, required=True, help="get_public.sh's output folder")
    public.add_argument("--shared", type=Path, required=True, help="the folder holding hc18, african_planes, usgra")
    public.add_argument("out", type=Path)
    public.add_argument("--datasets", nargs="+", help="only these datasets (default: all eight)")
    public.add_argument("--seed", type=int, default=0, help="seed of the splits drawn at random (default 0)")
    public.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of train moved to val where a dataset has no val split (default 0.1)")
    public.add_argument("--overwrite", action="store_true", help="replace existing CSVs")
    public.set_defaults(func=_build_public)

    synth = commands.add_parser("synth", help="write the synthetic 27-task suite in the FMC layout")
    synth.add_argument("out", type=Path)
    synth.add_argument("--per-task", type=int, default=64, help="samples per task and split")
    synth.add_argument("--size", default="128", help="image size: N or HxW (default 128)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--splits", nargs="+", default=["train", "val"])
    synth.add_argument("--tasks", nargs="+", help="task ids (default: the 27 benchmark tasks)")
    synth.add_argument("--overwrite", action="store_true")
    synth.set_defaults(func=_synth)

    cache = commands.add_parser(
        "cache", help="resize an FMC root's images (and masks) once into a resize cache, ahead of training with "
                      "--cache-dir",
        description="Resize every split (train, val, test: the root's split subfolders, or the root itself) into "
                    "large memory-mapped uint8 shards at one input size. Entries already current are kept; a "
                    "changed source or a damaged shard is rebuilt. Several builders may run at once: they take "
                    "turns (a lock in the cache folder).")
    cache.add_argument("root", type=Path, help="an FMC root, or a folder of split roots")
    cache.add_argument("--size", required=True, help="the model's input size: N or HxW (the recipe's --image-size)")
    cache.add_argument("--cache-dir", type=Path, default=None,
                       help="default: ROOT/.m2dino_cache/HxW-MODE (a cache folder holds one size and resize mode)")
    cache.add_argument("--resize-mode", default="letterbox", choices=["letterbox", "stretch"])
    cache.add_argument("--tasks", nargs="+", help="only these task ids")
    cache.add_argument("--workers", type=int, default=None,
                       help="build in this many processes (default: one per CPU core; 0: in this process)")
    cache.set_defaults(func=_cache)


def _dataset_title(adapter: Any) -> str:
    """The first sentence of an adapter's docstring without its layout lead-in, e.g.
    'HC18 (van den Heuvel et al. 2018; Zenodo 1327317), training set'."""
    text = " ".join((adapter.__doc__ or "").split("::")[0].split())
    return re.sub(r",?\s*(in its )?(published|public) layout$", "", text).rstrip(".")


def parse_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> keyword arguments (JSON values when they parse, else strings)."""
    options = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def _convert(args: argparse.Namespace) -> int:
    from ..data.adapters import convert

    options = parse_options(args.option)
    try:
        roots = convert(args.name, args.src, args.dst, overwrite=args.overwrite, **options)
    except TypeError as err:  # an option the adapter does not take
        raise ValueError(f"{args.name}: {err}") from None
    for split, root in roots.items():
        print(f"{split}: {root}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..data.check import check_fmc, format_report

    roots = [args.root] if (args.root / CSV_DIR).is_dir() else sorted(
        p for p in args.root.iterdir() if (p / CSV_DIR).is_dir()) if args.root.is_dir() else []
    if not roots:
        raise FileNotFoundError(f"{args.root}: no {CSV_DIR}/ in it or in its subfolders; expected an FMC root")
    failed = False
    for root in roots:
        reports = check_fmc(root, args.tasks, decode=not args.quick, progress=True)
        print(f"== {root}")
        print(format_report(reports))
        failed |= any(entry.problems for entry in reports.values())
    return 1 if failed else 0


def _build_public(args: argparse.Namespace) -> int:
    from ..data.adapters.build_public import DATASHEET, build_public

    finite_number("--val-fraction", args.val_fraction, 0.0, 1.0)
    report = build_public(args.src, args.shared, args.out, args.datasets, args.seed, args.val_fraction,
                          args.overwrite)
    for name, entry in report["datasets"].items():
        print(f"{name}: " + ", ".join(f"{split} {sum(entry['samples'][split].values())}"
                                      for split in report["splits"]) + " samples")
    print(f"datasheet: {args.out / DATASHEET}")
    return 0


def parse_size(flag: str, text: str, field: str) -> tuple[int, int]:
    """``N`` or ``HxW`` -> (H, W), each side a whole number >= 1 within the ``field`` bound of
    `m2dino.limits` (checked before anything is allocated), else one error naming ``flag``."""
    height, sep, width = text.strip().lower().partition("x")
    try:
        size = (int(height), int(width if sep else height))
    except ValueError:
        raise ValueError(f"{flag} {text!r}: expected N or HxW in pixels, e.g. 128 or 96x128") from None
    for side in size:
        positive_int(flag, side)
        check_bound(flag, side, field)
    return size


def _synth(args: argparse.Namespace) -> int:
    from ..data.synthetic import write_synthetic

    size = parse_size("--size", args.size, "synthetic_side")
    positive_int("--per-task", args.per_task)
    roots = write_synthetic(args.out, args.per_task, size, args.seed, tuple(args.splits), args.tasks, args.overwrite)
    for split, root in roots.items():
        print(f"{split}: {root}")
    return 0


def _cache(args: argparse.Namespace) -> int:
    from ..data import read_fmc
    from ..data.cache import ResizeCache

    size = parse_size("--size", args.size, "input_side")  # the model's input: the same bound as a config's
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers={args.workers}: expected 0 (build in this process) or more processes")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = cores if args.workers is None else args.workers
    roots = _fmc_roots(args.root)
    cache_dir = args.cache_dir or args.root / ".m2dino_cache" / f"{size[0]}x{size[1]}-{args.resize_mode}"
    cache = ResizeCache(cache_dir, size, args.resize_mode)
    for root in roots:
        counts = cache.build(read_fmc(root, args.tasks, lazy=True).items, workers)
        print(f"{root}: {counts['built']} resized, {counts['current']} already current")
    print(f"cache: {cache_dir} (train with --cache-dir {cache_dir} --image-size {size[0]})")
    return 0


def _fmc_roots(root: Path) -> list[Path]:
    """``root`` itself if it is an FMC root, else its subfolders that are (one per split)."""
    roots = [root] if (root / CSV_DIR).is_dir() else sorted(
        p for p in root.iterdir() if (p / CSV_DIR).is_dir()) if root.is_dir() else []
    if not roots:
        raise FileNotFoundError(f"{root}: no {CSV_DIR}/ in it or in its subfolders; expected an FMC root")
    return roots
