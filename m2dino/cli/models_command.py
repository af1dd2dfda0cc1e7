"""``m2dino models``: the model zoo's released models and backbones, as a table or JSON."""

from __future__ import annotations

import argparse
import json

from ..models.zoo import KINDS, ZOO_ENV, ZooEntry, get_entry, list_pretrained, load_zoo

EMPTY = ("no released models yet: the first releases are being trained. Meanwhile --model takes a model folder "
         "you trained (m2dino train) or a Hub id (org/name).")
COLUMNS = ("name", "kind", "backbone", "params", "input", "tasks", "training data", "headline metrics", "license",
           "where")
SHOWN = 2  # items per cell before "+N"; `m2dino models NAME` and --json show them all


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the model zoo: released models and backbones (bundled or on the Hub)",
        description="The model zoo: released M2DINO models (M2DINO.from_pretrained(NAME), m2dino predict --model "
                    "NAME) and ultrasound-pretrained backbones (--pretrained NAME in a recipe). 'where' says "
                    "whether this install bundles the copy (loads offline) or it comes from its Hub id. With NAME: "
                    f"every field of that entry. ${ZOO_ENV} reads another registry file.")
    parser.add_argument("name", nargs="?", metavar="NAME", help="show one entry in full")
    parser.add_argument("--kind", choices=KINDS, help="only models or only backbones")
    parser.add_argument("--task", metavar="TASK", help="only entries trained on this task id")
    parser.add_argument("--json", action="store_true", help="machine-readable output (every field)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        entry = get_entry(args.name)
        print(json.dumps(entry.to_dict(), indent=2) if args.json else describe(entry))
        return 0
    zoo = load_zoo()
    entries = [zoo[name] for name in list_pretrained(kind=args.kind, task=args.task)]
    if args.json:
        print(json.dumps([entry.to_dict() for entry in entries], indent=2))
    elif not zoo:
        print(EMPTY)
    elif not entries:
        chosen = " ".join(f"--{flag} {value}" for flag, value in (("kind", args.kind), ("task", args.task)) if value)
        print(f"no zoo entry matches {chosen} (m2dino models lists all {len(zoo)})")
    else:
        print(table(entries))
    return 0


def table(entries: list[ZooEntry]) -> str:
    """One row per entry, columns padded to their widest cell."""
    rows = [COLUMNS] + [row(entry) for entry in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def row(entry: ZooEntry) -> tuple[str, ...]:
    metrics = [f"{m['task']} {m['metric']} {m['value']:.4g}" for m in entry.metrics]
    return (entry.name, entry.kind, entry.backbone, params(entry.params), input_size(entry.input_size),
            shortened(list(entry.tasks)) or "-", shortened([d["dataset"] for d in entry.training_data]) or "-",
            shortened(metrics) or "-", entry.license, entry.where)


def describe(entry: ZooEntry) -> str:
    """Every field of one entry, and how to load it."""
    hub = f" (Hub: {entry.hub_id})" if entry.where == "bundled" and entry.hub_id else ""
    revision = f" at revision {entry.revision}" if entry.revision else ""
    use = (f'M2DINO.from_pretrained("{entry.name}") or m2dino predict --model {entry.name} IMAGE --out DIR'
           if entry.kind == "model" else f"--pretrained {entry.name} in a recipe")
    size = input_size(entry.input_size)
    lines = [f"{entry.name} ({entry.kind})", f"  where: {entry.where}{hub}{revision}",
             f"  backbone: {entry.backbone}, {params(entry.params)} parameters, input {size} px",
             f"  tasks: {', '.join(entry.tasks) or '-'}", "  training data:"]
    lines += [f"    {d['dataset']} ({d['license']})" + (f" {d['url']}" if "url" in d else "")
              for d in entry.training_data]
    lines.append("  headline metrics:" if entry.metrics else "  headline metrics: -")
    lines += [f"    {m['task']}: {m['metric']} = {m['value']:.4g} ({m['dataset']}, {m['split']} split)"
              for m in entry.metrics]
    lines += [f"  license: {entry.license}", f"  use: {use}"]
    return "\n".join(lines)


def params(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def input_size(size: tuple[int, int]) -> str:
    return str(size[0]) if size[0] == size[1] else f"{size[0]}x{size[1]}"


def shortened(items: list[str]) -> str:
    more = f" +{len(items) - SHOWN}" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
