"""``m2dino release RELEASE.yaml [--set k=v] [--push org/name]``: a zoo release in one command."""

from __future__ import annotations

import argparse
import shlex


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "release", help="train, evaluate and package a zoo model or backbone (Hub-ready folder with its card)",
        description="Optional pretraining, training (run: a unified run config), evaluation on the test split of "
                    "every training dataset (the code `m2dino evaluate` runs) beside the constant predictor, and "
                    "one Hub-ready folder: config.json, model.safetensors, README.md model card with model-index, "
                    "release.json, loss curves and example overlays. A YAML with 'kind: backbone' releases a "
                    "pretrained backbone alone (pretraining resumed from its checkpoints, linear probes against "
                    "random init on its card). README.md ('Releasing a model') lists the release YAML's fields.")
    parser.add_argument("config", help="release YAML (name, run, test, licenses, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field, e.g. --set run.train.steps=500 (repeatable)")
    parser.add_argument("--push", default=None, metavar="ORG/NAME",
                        help="upload the folder to this Hub model repo (needs a token: huggingface-cli login or "
                             "HF_TOKEN)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier release folder and training run folder (never a pretraining: it "
                             "resumes from its latest checkpoint; delete its folder to start it over)")
    parser.add_argument("--device", default="auto", help="evaluation device: cpu, cuda, cuda:1, ... (default: "
                                                         "cuda when available)")
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # deferred: torch loads only when a release runs
    from ..recipes.config_io import apply_overrides, read_yaml_mapping
    from ..release import (
        BackboneReleaseConfig,
        ReleaseConfig,
        hub_token,
        is_backbone_release,
        release,
        release_backbone,
    )
    from .device import resolve_device

    values = apply_overrides(read_yaml_mapping(args.config), args.overrides)
    if args.push:
        hub_token(args.push)  # no token: one line before any work
    if is_backbone_release(values):
        outcome = release_backbone(BackboneReleaseConfig.from_dict(values, args.config), command=_command_line(args),
                                   overwrite=args.overwrite, progress=not args.quiet, push=args.push)
    else:
        outcome = release(ReleaseConfig.from_dict(values, args.config), command=_command_line(args),
                          overwrite=args.overwrite, device=resolve_device(args.device), progress=not args.quiet,
                          push=args.push)
    if not args.quiet:
        print(f"wrote {outcome.folder} (licence {outcome.license.license})")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    """The command, rebuilt from its parsed arguments (the same line whether typed or called from Python)."""
    parts = ["m2dino", "release", args.config, *(f"--set={o}" for o in args.overrides)]
    parts += [f"--push={args.push}"] * bool(args.push) + ["--overwrite"] * args.overwrite
    parts += [f"--device={args.device}"] * (args.device != "auto") + ["--quiet"] * args.quiet
    return " ".join(shlex.quote(p) for p in parts)
