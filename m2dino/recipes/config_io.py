"""Typed config dataclasses to and from plain mappings (YAML), with ``key=value`` overrides.

A mapping may leave fields out (they keep the dataclass's default) but may not name an unknown field
or give a value of the wrong type: either is an error that names the field, the value and what was
expected, before anything is built.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def config_to_dict(config: Any) -> dict:
    """JSON/YAML-ready (tuples as lists, as they come back from a file)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_to_yaml(config: Any) -> str:
    """The config as YAML, fields in their dataclass order (what ``--print-config`` and ``run.yaml`` hold)."""
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def write_config_yaml(config: Any, folder: str | Path, name: str = "run.yaml") -> Path:
    """``folder/name`` holding the config as YAML (the folder is made if missing)."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_to_yaml(config))
    return path


def config_from_dict(cls: type, values: dict, source: str, prefix: str = "", base: Any = None) -> Any:
    """An instance of dataclass ``cls``: ``values`` laid over ``base`` (default: ``cls()``'s values)."""
    if not isinstance(values, dict):
        raise ValueError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown field {prefix}{unknown[0]}; expected one of "
                         f"{', '.join(prefix + name for name in fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name in fields:
        default = getattr(base, name) if base is not None else _default(fields[name])
        if name not in values:
            if default is not dataclasses.MISSING:
                kwargs[name] = default
            continue
        kwargs[name] = _convert(values[name], hints[name], default, source, prefix + name)
    missing = [name for name, f in fields.items() if name not in kwargs]
    if missing:
        raise ValueError(f"{source}: {prefix}{missing[0]} is required")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # the dataclass's own validation, named with the file
        raise ValueError(f"{source}: {err}") from None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _convert(value: Any, hint: Any, default: Any, source: str, name: str) -> Any:
    """``value`` as type ``hint`` (a nested dataclass is filled from its mapping), else an error naming ``name``."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if dataclasses.is_dataclass(option) and isinstance(value, dict):
            base = default if dataclasses.is_dataclass(default) else None
            return config_from_dict(option, value, source, name + ".", base)
        converted = _as_plain(value, option)
        if converted is not _WRONG:
            return converted
    expected = " or ".join(_describe(option) for option in options)
    raise ValueError(f"{source}: {name}={value!r}; expected {expected}")


_WRONG = object()


def _as_plain(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG
    if hint is str:
        return value if isinstance(value, str) else _WRONG
    if hint is dict or origin is dict:
        return value if isinstance(value, dict) else _WRONG
    if origin in (list, tuple):
        if isinstance(value, str):  # a flag-style "2,3" or "a,b" from --set
            value = [part.strip() for part in value.split(",") if part.strip()]
            value = [_yaml_scalar(part) for part in value]
        if not isinstance(value, (list, tuple)):
            return _WRONG
        item_hints = [args[0]] * len(value) if origin is list or args[-1:] == (Ellipsis,) else list(args)
        if len(item_hints) != len(value):
            return _WRONG
        items = [_as_plain(v, h) for v, h in zip(value, item_hints)]
        if any(item is _WRONG for item in items):
            return _WRONG
        return tuple(items) if origin is tuple else items
    return _WRONG


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) is typing.Union or isinstance(hint, types.UnionType)


def _describe(hint: Any) -> str:
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def _yaml_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def read_yaml_mapping(path: str | Path) -> dict:
    """A YAML file's top-level mapping; an unreadable or non-mapping file is one error naming it."""
    import yaml

    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:  # includes python/object tags, which safe_load refuses
        problem = str(err).splitlines()[0]
        raise ValueError(f"{path}: not a plain YAML config ({problem})") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of config fields, got {type(loaded).__name__}")
    return loaded


def apply_overrides(values: dict, overrides: Sequence[str]) -> dict:
    """``values`` with each ``dotted.key=value`` set (the value read as YAML: 0.5, null, [2, 3], text)."""
    result = json.loads(json.dumps(values))
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {override!r}: expected KEY=VALUE, e.g. train.steps=500")
        *parents, leaf = key.strip().split(".")
        node = result
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}  # e.g. semi: null in the file, semi.method=cps here
            node = node[part]
        node[leaf] = _yaml_scalar(text) if text.strip() else ""  # model.moe_blocks= : an empty list
    return result
