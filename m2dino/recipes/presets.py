"""Named training presets: run configs whose results were measured, shipped with the package.

A preset is a YAML file in ``preset_files/``: a ``description``, the ``expected`` result (the score
and run time the study that chose it measured, and where), and ``run``, a partial `RunConfig`
mapping without data paths. ``extends: OTHER`` starts ``run`` from OTHER's: mappings merge key by
key, anything else (a list, a number) replaces, so a variant states only what it changes.
``m2dino train --preset NAME --set data.sources=[ROOT/train] --set data.val=ROOT/val`` trains a
preset; ``m2dino train --list-presets`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

PRESET_SUFFIX = ".yaml"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    expected: dict       # mean_test_score, seeds, train_time, measured_by
    run: dict            # a partial RunConfig mapping (what it leaves out keeps the default)


def _files() -> dict[str, object]:
    folder = resources.files("m2dino.recipes") / "preset_files"
    return {f.name.removesuffix(PRESET_SUFFIX): f for f in folder.iterdir() if f.name.endswith(PRESET_SUFFIX)}


def preset_names() -> list[str]:
    return sorted(_files())


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is a ValueError listing the presets."""
    files = _files()
    if name not in files:
        raise ValueError(f"unknown preset {name!r}; the presets are: {', '.join(sorted(files))}")
    values = yaml.safe_load(files[name].read_text())
    return Preset(name, values["description"], dict(values.get("expected") or {}), _run_of(name, values, files, []))


def _run_of(name: str, values: dict, files: dict, chain: list[str]) -> dict:
    """The preset's ``run`` (``values`` is its file) merged onto the run of the preset it extends, and so
    on up the chain of presets that led here."""
    chain = [*chain, name]
    parent = values.get("extends")
    if parent is None:
        return dict(values["run"])
    if parent in chain:
        raise ValueError(f"preset {chain[0]!r} extends itself: {' -> '.join([*chain, parent])}")
    if parent not in files:
        raise ValueError(f"preset {name!r} extends {parent!r}, which is not a preset; the presets are: "
                         f"{', '.join(sorted(files))}")
    return _merged(_run_of(parent, yaml.safe_load(files[parent].read_text()), files, chain), values["run"])


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        both_mappings = isinstance(value, dict) and isinstance(base.get(key), dict)
        merged[key] = _merged(base[key], value) if both_mappings else value
    return merged


def presets_table() -> str:
    """A markdown table of the presets: name, what it is, its expected score and training time."""
    lines = ["| preset | what | expected mean test score | training time | measured by |", "|---|---|---:|---|---|"]
    for name in preset_names():
        preset = get_preset(name)
        expected = preset.expected
        seeds = expected.get("seeds", "?")
        lines.append(f"| `{name}` | {preset.description} | {expected.get('mean_test_score', '')} "
                     f"({seeds} seed{'' if seeds == 1 else 's'}) | {expected.get('train_time', '')} | "
                     f"{expected.get('measured_by', '')} |")
    return "\n".join(lines)
