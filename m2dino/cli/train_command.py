"""``m2dino train`` and ``m2dino pretrain``: a run from a YAML config with ``--set`` overrides.

Their flags belong to `m2dino.recipes.flags` (the one home of the training flags), which parses
everything after the command name; this module only lists the commands in ``m2dino --help``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

CONFIG_COMMANDS = {"train": "train M2DINO from a YAML run config (`m2dino train --help`)",
                   "pretrain": "pretrain the backbone from a YAML config (`m2dino pretrain --help`)"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    for command, help_text in CONFIG_COMMANDS.items():
        subparsers.add_parser(command, help=help_text, add_help=False)


def run(command: str, argv: Sequence[str]) -> int:
    import sys

    from ..recipes.flags import EXIT_USER_ERROR, config_main  # deferred: torch loads only when a run starts
    from ..training.engine import NonFiniteLossError

    try:
        return config_main(command, list(argv))
    except NonFiniteLossError as err:  # the run diverged: one line, as for the other user errors
        print(f"m2dino {command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
