"""``m2dino select``: active learning, the pool images to label next as a CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import positive_int

STRATEGY_NAMES = ("random", "entropy", "egad", "coreset")  # = m2dino.selection.STRATEGIES (imports torch)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select", help="active learning: choose which unlabelled images to label next",
        description="Rank a pool of unlabelled images for labelling with a model and write the best BUDGET of "
                    "them to a CSV (image, score, rank, strategy). Strategies: random; entropy (the model's "
                    "predictive entropy for the task); egad (SSL-EGAD: the most uncertain third, then the "
                    "images least like the labelled ones by cosine similarity and mutual information); "
                    "coreset (k-center greedy: the images farthest from the labelled ones and each other).")
    parser.add_argument("--model", required=True, help="model folder or Hub id (org/name)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    parser.add_argument("--pool", required=True, type=Path, help="folder of unlabelled images (searched recursively)")
    parser.add_argument("--labelled", type=Path, default=None,
                        help="the images already labelled: a folder of them, or a text/CSV list of pool files "
                             "(an 'image' column or one path per line; e.g. an earlier picked.csv)")
    parser.add_argument("--budget", required=True, type=int, help="how many images to pick")
    parser.add_argument("--strategy", required=True, choices=STRATEGY_NAMES)
    parser.add_argument("--features", default="pixels", choices=("pixels", "backbone"),
                        help="what egad and coreset compare: downsampled gray pixels (default) or the model's "
                             "pooled embedding")
    parser.add_argument("--task", default=None, help="the task whose predictions are scored (default: the model's "
                                                     "only task)")
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write (outside the pool folder)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--seed", type=int, default=0, help="random seed (random strategy, first core-set pick)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch  # here, not at import time: `m2dino --help` and other commands stay fast

    from ..data.unlabeled import UnlabeledSource
    from ..models import M2DINO
    from ..selection import SelectionConfig, check_selection, read_labelled, select, write_picks

    positive_int("--batch-size", args.batch_size, "batch_size")
    check_out(args.out, args.pool, args.overwrite)
    pool = UnlabeledSource.from_folder(args.pool)  # bad paths fail before the model loads
    labelled = read_labelled(args.labelled, pool, args.pool) if args.labelled is not None else None
    config = SelectionConfig(args.strategy, args.budget, args.task, args.features, args.seed, args.batch_size)
    check_selection(pool, config, labelled)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = M2DINO.from_pretrained(args.model, revision=args.revision, device=device)
    picks = select(model, pool, config, labelled, progress=not args.quiet)
    write_picks(picks, args.out, overwrite=args.overwrite)
    print(f"picked {len(picks)} of {len(pool)} images ({args.strategy}) -> {args.out}")
    return 0


def check_out(out: Path, pool: Path, overwrite: bool) -> None:
    """Refuse an --out the picks must not go to, before the model loads: an existing file (unless
    --overwrite), a folder, or a path inside the pool folder (its files would be read back as scans)."""
    if out.resolve().is_relative_to(pool.resolve()):
        raise ValueError(f"--out {out} is inside the --pool folder {pool}, whose files are read as unlabelled "
                         "scans; expected a path outside it")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; expected a CSV file to write")
    if out.exists() and not overwrite:
        raise FileExistsError(f"--out {out} exists; pass --overwrite to replace it")
