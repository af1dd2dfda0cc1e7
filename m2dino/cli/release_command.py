"""``m2dino release RELEASE.yaml [--set k=v] [--push org/name]``: a zoo release in one command."""

from __future__ import annotations

import argparse
import shlex


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "release", help="train, evaluate and package a zoo model (Hub-ready folder with its card)",
        description="Optional pretraining, training (run: a unified run config), evaluation on the test split of "
                    "every training dataset (the code `m2dino evaluate` runs) beside the constant predictor, and "
                    "one Hub-ready folder: config.json, model.safetensors, README.md model card with model-index, "
                    "release.json, loss curves and example overlays. README.md ('Releasing a model') lists the "
                    "release YAML's fields.")
    parser.add_argument("config", help="release YAML (name, run, test, licenses, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. --set run.train.steps=500 (repeatable)")
    parser.add_argument("--push", default=None, metavar="ORG/NAME",
                        help="upload the folder to this Hub model repo (needs a token: huggingface-cli login or "
                             "HF_TOKEN)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier release folder and training run folder")
    parser.add_argument("--device", default="auto", help="evaluation device: cpu, cuda, cuda:1, ... (default: "
                                                         "cuda when available)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..release import ReleaseConfig, hub_token, release  # deferred: torch loads only when a release runs
    from .device import resolve_device

    config = ReleaseConfig.read(args.config, args.overrides)
    if args.push:
        hub_token(args.push)  # no token: one line before any work
    device = resolve_device(args.device)
    outcome = release(config, command=_command_line(args), overwrite=args.overwrite, device=device,
                      progress=not args.quiet, push=args.push)
    if not args.quiet:
        print(f"wrote {outcome.folder} (licence {outcome.license.license})")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from its parsed arguments (the same line whether typed or called from Python)."""
    parts = ["m2dino", "release", args.config, *(f"--set={o}" for o in args.overrides)]
    parts += [f"--push={args.push}"] * bool(args.push) + ["--overwrite"] * args.overwrite
    parts += [f"--device={args.device}"] * (args.device != "auto") + ["--quiet"] * args.quiet
    return " ".join(shlex.quote(p) for p in parts)
