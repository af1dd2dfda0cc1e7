"""`m2dino` entry point: each command group lives in its own module and adds its own sub-parser."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines `add_parser(subparsers)`; the parser it adds sets `func` to its handler.
COMMAND_MODULES: tuple[str, ...] = ("score_command", "evaluate_command", "data_commands")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2dino", description="Multi-task ultrasound foundation models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"m2dino.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        # User errors get one clear line, not a traceback; bugs (other exceptions) keep theirs.
        print(f"m2dino {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
