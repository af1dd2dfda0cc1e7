"""Writing a benchmark's result: the markdown report next to the JSON it is rendered from.

The markdown is always a function of the JSON alone, so a report can be re-rendered (``--rerender``)
without measuring again, and a committed report can be checked against its committed JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
REPO = RESULTS.parents[1]

# An argument that is an absolute path, alone, as ``--flag=PATH`` or as a data source ``NAME:PATH``
# (not a URL: ``https://...``).
_ABSOLUTE_ARGUMENT = re.compile(r"(--[\w-]+=|\w+:)?(/(?!/).*)")


def portable_path(path: str | Path) -> str:
    """``path`` as a committed result records it: no machine's folders in it. Inside the repository:
    relative to it (``benchmarks/results``). Outside it: as given when relative (``../shared/data``,
    relative to where the command ran), else `elided_path`."""
    path = Path(path)
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        pass
    return elided_path(path) if path.is_absolute() else path.as_posix()


def elided_path(path: Path) -> str:
    """An absolute path by at most its last two parts below the top-level folder, after ``...``
    (``/tmp/i10/s54/train`` -> ``.../s54/train``, ``/tmp/le`` -> ``.../le``): enough to tell a study's
    roots apart (the two parts name a root and its split), not where the machine kept them (``/tmp``,
    a home folder, a mount point)."""
    return "/".join(("...", *path.parts[2:][-2:]))


def portable_command(argv: Sequence[str]) -> str:
    """``argv`` quoted for a shell, its absolute paths made portable (`portable_path`); relative ones are
    kept as typed, since they are relative to where the command ran."""
    def portable(argument: str) -> str:
        match = _ABSOLUTE_ARGUMENT.fullmatch(argument)
        return argument if match is None else (match[1] or "") + portable_path(match[2])

    return " ".join(shlex.quote(portable(a)) for a in argv)


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that produced this run, as the reports quote it (``python benchmarks/x.py --flag``);
    ``argv`` defaults to ``sys.argv``."""
    return "python " + portable_command(sys.argv if argv is None else argv)


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out-dir``, ``--name`` and ``--rerender``, the same for every benchmark script."""
    parser.add_argument("--out-dir", type=Path, default=None,
                        help=f"default: {RESULTS.parent.name}/{RESULTS.name} (a --quick run: a temporary folder, "
                             "so that the committed results are not overwritten)")
    parser.add_argument("--name", default=name, help="output file stem (<out-dir>/<name>.md and .json)")
    parser.add_argument("--rerender", action="store_true", help="rewrite the .md from the existing .json")


def output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """(markdown path, JSON path) for parsed output arguments; a ``--quick`` run without ``--out-dir``
    writes under the temporary folder, never over the committed results."""
    out_dir = args.out_dir
    if out_dir is None:
        out_dir = Path(tempfile.gettempdir()) / f"m2dino_{args.name}_quick" if getattr(args, "quick", False) \
            else RESULTS
    return out_dir / f"{args.name}.md", out_dir / f"{args.name}.json"


def read_result(json_path: Path) -> dict:
    if not json_path.is_file():
        raise FileNotFoundError(f"{json_path}: no result to re-render; run the benchmark first")
    return json.loads(json_path.read_text())


def write_result(md_path: Path, json_path: Path, markdown: str, result: dict, indent: int = 1) -> None:
    """The report and its JSON (``indent`` as in the committed file, so a rerun diffs cleanly)."""
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(result, indent=indent) + "\n")


def fmt_ratio(r: dict) -> str:
    """A ratio summary as ``median (min–max)``."""
    return f"{r['median']:.3f} ({r['min']:.2f}–{r['max']:.2f})"


def fmt_ms(r: dict) -> str:
    """A difference summary in seconds as signed milliseconds, ``median (min to max)``."""
    return f"{1000 * r['median']:+.1f} ({1000 * r['min']:+.1f} to {1000 * r['max']:+.1f})"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


# A report's hand-written reading of its numbers sits between these markers; rendering the report
# again (new measurements, --rerender) keeps it.
MARK_START, MARK_END = "<!-- interpretation -->", "<!-- /interpretation -->"
PLACEHOLDER = "_Not written yet: read the tables below._"


def interpretation_block(previous: Path | str | None) -> list[str]:
    """The markers and what the previous report (a path, its text, or None) held between them, else the
    placeholder: markdown lines to put under a report's Interpretation heading."""
    return [MARK_START, kept_interpretation(previous), MARK_END]


def kept_interpretation(previous: Path | str | None) -> str:
    if isinstance(previous, Path):
        previous = previous.read_text() if previous.is_file() else None
    found = re.search(re.escape(MARK_START) + r"\n?(.*?)\n?" + re.escape(MARK_END), previous or "", re.S)
    return found.group(1).strip() if found and found.group(1).strip() else PLACEHOLDER
