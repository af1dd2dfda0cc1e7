"""`m2dino` entry point: each command group lives in its own module and adds its own sub-parser."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from .. import __version__
from ..data.errors import error_line

# Failed writes whose OSError names no file: the message then names the command's output instead.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

# Each module defines `add_parser(subparsers)`; the parser it adds sets `func` to its handler.
COMMAND_MODULES: tuple[str, ...] = ("score_command", "evaluate_command", "data_commands", "predict_command",
                                     "demo_command", "select_command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2dino", description="Multi-task ultrasound foundation models.")
    parser.add_argument("--version", action="version", version=f"m2dino {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"m2dino.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as err:
        # User errors (bad input data, a missing, unreadable or unwritable path, a full disk) get one
        # clear line naming the path, not a traceback; bugs (other exceptions) keep theirs.
        line = error_line(err)
        output = next((getattr(args, name) for name in ("out", "dst") if getattr(args, name, None)), None)
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS and not err.filename and output is not None:
            line += f" (output: {output})"  # e.g. a full disk: the OS names no file
        print(f"m2dino {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
