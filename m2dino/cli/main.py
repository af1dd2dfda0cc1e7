"""`m2dino` entry point: each command group lives in its own module and adds its own sub-parser."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Callable

from .. import __version__
from ..data.errors import error_line
from .train_command import CONFIG_COMMANDS

# Failed writes whose OSError names no file: the message then names the command's output instead.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)

# Each module defines `add_parser(subparsers)`; the parser it adds sets `func` to its handler.
COMMAND_MODULES: tuple[str, ...] = ("train_command", "score_command", "evaluate_command", "data_commands",
                                     "predict_command", "demo_command", "select_command", "models_command",
                                     "export_command", "release_command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m2dino", description="Multi-task ultrasound foundation models.")
    parser.add_argument("--version", action="version", version=f"m2dino {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"m2dino.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in CONFIG_COMMANDS:  # `m2dino train ...`: the recipes' flags module parses the rest
        from .train_command import run

        return _report_user_errors(argv[0], lambda: run(argv[0], argv[1:]))
    args = build_parser().parse_args(argv)
    output = next((getattr(args, name) for name in ("out", "dst") if getattr(args, name, None)), None)
    return _report_user_errors(args.command, lambda: args.func(args), output)


def _report_user_errors(command: str, handler: Callable[[], int | None], output=None) -> int:
    """The handler's exit status. User errors (bad input data or config, a missing, unreadable or
    unwritable path, a full disk) get one clear line naming the path, not a traceback; bugs (other
    exceptions) keep theirs."""
    try:
        return int(handler() or 0)
    except (ValueError, KeyError, OSError) as err:
        line = error_line(err)
        if isinstance(err, OSError) and err.errno in WRITE_ERRNOS and not err.filename and output is not None:
            line += f" (output: {output})"  # e.g. a full disk: the OS names no file
        print(f"m2dino {command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
