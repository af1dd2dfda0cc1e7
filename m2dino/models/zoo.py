"""The model zoo's registry: the released models and backbones, as data (like timm's pretrained configs).

The registry is ``zoo.json`` beside this module, shipped in the package; the release pipeline adds one
entry per release. ``M2DINO_ZOO_FILE=/path/to/zoo.json`` reads another registry instead (tests, a
private zoo). This module only reads and resolves names (stdlib only: ``m2dino models`` and
``m2dino.list_pretrained()`` start without torch); loading is `M2DINO.from_pretrained` and
`load_backbone_weights`, which both call `resolve` so that a name means the same thing everywhere.

The file (an illustrative entry; the shipped list is empty until the first release)::

    {"format": 1, "entries": [
      {"name": "example-model",                 # no '/': a zoo name is never mistaken for a Hub id
       "kind": "model",                         # "model" (M2DINO.from_pretrained) or "backbone" (--pretrained)
       "hub_id": "org/example-model",           # or null (bundled only)
       "revision": null,                        # optional: the Hub revision the card's numbers belong to
       "bundled": "bundled/example-model",      # a folder relative to the registry file's folder, or null
       "backbone": "vit_mini_patch16_dinov3", "params": 1000000, "input_size": 224,   # or [height, width]
       "tasks": ["fetal_head"],                 # may be empty for a backbone
       "training_data": [{"dataset": "HC18", "license": "CC BY 4.0"}],                # "url" optional
       "metrics": [{"task": "fetal_head", "dataset": "HC18", "split": "test", "metric": "dice", "value": 0.5}],
       "license": "CC-BY-4.0"}]}

The shipped registry's bundled copies live in ``m2dino/models/bundled/<name>/`` (package data in
pyproject.toml). A bundled model folder holds config.json + model.safetensors (`M2DINO.save_pretrained`);
a bundled backbone folder holds backbone.safetensors (what `m2dino pretrain` exports) or a
model.safetensors (timm or transformers layout). The file is validated on load: an unknown key, a
missing field or a bundled path outside the registry's folder is one error naming the entry and the field.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..limits import finite_number, positive_int

ZOO_ENV = "M2DINO_ZOO_FILE"
SHIPPED_ZOO = Path(__file__).with_name("zoo.json")
FORMAT = 1
KINDS = ("model", "backbone")
BACKBONE_FILE = "backbone.safetensors"  # the name `m2dino pretrain` exports (training.pretrain.export)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_REQUIRED = ("name", "kind", "hub_id", "bundled", "backbone", "params", "input_size", "tasks", "training_data",
             "metrics", "license")
_OPTIONAL = {"revision": None}
_DATA_FIELDS = {"required": ("dataset", "license"), "optional": ("url",)}
_METRIC_FIELDS = ("task", "dataset", "split", "metric", "value")


@dataclass(frozen=True)
class ZooEntry:
    """One released model or backbone. ``root`` is the folder the bundled path is relative to."""

    name: str
    kind: str
    hub_id: str | None
    bundled: str | None
    backbone: str
    params: int
    input_size: tuple[int, int]
    tasks: tuple[str, ...]
    training_data: tuple[dict[str, str], ...]
    metrics: tuple[dict[str, Any], ...]
    license: str
    revision: str | None
    root: Path

    @property
    def bundled_folder(self) -> Path | None:
        """The bundled copy's folder if this install has it, else None."""
        if self.bundled is None:
            return None
        folder = self.root / self.bundled
        return folder if folder.is_dir() else None

    @property
    def where(self) -> str:
        """``"bundled"`` when this install holds the copy (loads offline), else the Hub id."""
        return "bundled" if self.bundled_folder is not None else (self.hub_id or "not installed")

    def to_dict(self) -> dict[str, Any]:
        """The registry fields (as the file spells them) and ``where``."""
        data = asdict(self)
        del data["root"]
        data.update(input_size=list(self.input_size), tasks=list(self.tasks), training_data=list(self.training_data),
                    metrics=list(self.metrics), where=self.where)
        return data


class Resolved(NamedTuple):
    """What a model or weights argument names: ``source`` (a local path or a Hub id) and the
    ``revision`` to download it at; ``entry`` is the zoo entry when the argument was a zoo name."""

    source: str | Path
    revision: str | None
    entry: ZooEntry | None


def zoo_file() -> Path:
    """The registry in force: ``$M2DINO_ZOO_FILE`` when set, else the shipped ``zoo.json``."""
    override = os.environ.get(ZOO_ENV)
    return Path(override).expanduser() if override else SHIPPED_ZOO


def load_zoo(path: str | Path | None = None) -> dict[str, ZooEntry]:
    """The registry's entries by name, in file order (read at each call: the file is small, and a test
    or a user may point ``M2DINO_ZOO_FILE`` elsewhere at any time)."""
    path = Path(path) if path is not None else zoo_file()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such zoo registry (check {ZOO_ENV})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"zoo registry {path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or set(data) != {"format", "entries"} or not isinstance(data["entries"], list):
        raise ValueError(f"zoo registry {path}: expected an object with exactly 'format' and 'entries' (a list)")
    if data["format"] != FORMAT:
        raise ValueError(f"zoo registry {path}: format {data['format']!r}; this m2dino reads format {FORMAT}")
    entries: dict[str, ZooEntry] = {}
    for index, raw in enumerate(data["entries"]):
        entry = _parse_entry(raw, f"zoo registry {path}: entry {index}", path.parent)
        if entry.name in entries:
            raise ValueError(f"zoo registry {path}: entry {index} ({entry.name}): field 'name': "
                             "already used by an earlier entry")
        entries[entry.name] = entry
    return entries


def list_pretrained(kind: str | None = None, task: str | None = None) -> list[str]:
    """The names of the zoo's released models and backbones, in registry order.

    ``kind``: ``"model"`` (for `M2DINO.from_pretrained` / ``--model``) or ``"backbone"`` (for
    ``--pretrained``); ``task``: only entries trained on this task id. Empty until the first release.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)} (or None for both)")
    return [name for name, entry in load_zoo().items()
            if (kind is None or entry.kind == kind) and (task is None or task in entry.tasks)]


def get_entry(name: str, kind: str | None = None) -> ZooEntry:
    """The zoo entry called ``name``; an unknown name is one error listing the choices and the closest."""
    zoo = load_zoo()
    if name in zoo and (kind is None or zoo[name].kind == kind):
        return zoo[name]
    if name in zoo:
        raise ValueError(_wrong_kind(zoo[name]))
    raise KeyError(f"{name!r} is not in the model zoo; {_choices(name, zoo, kind)}")


def find_entry(source: str | Path) -> ZooEntry | None:
    """The zoo entry ``source`` names, or None: a `Path` or an existing path is never a zoo name."""
    if not isinstance(source, str) or "/" in source or Path(source).expanduser().exists():
        return None
    return load_zoo().get(source)


def resolve(source: str | Path, kind: str = "model", revision: str | None = None) -> Resolved:
    """What a model argument (``kind="model"``) or backbone-weights argument (``kind="backbone"``) names.

    Precedence: an existing local path as-is; then a zoo name: its bundled copy when this install has it
    and no ``revision`` is asked for (nothing is downloaded), else its Hub id (at ``revision``, else the
    entry's own); anything with a '/' is left to the loader (a Hub id 'org/name' or a missing path). A
    bare name that is none of these raises `FileNotFoundError` listing the zoo's names of that kind and
    the closest one, before anything is downloaded or loaded.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    local = Path(source).expanduser()
    if isinstance(source, Path) or (kind == "model" and local.is_dir()) or (kind == "backbone" and local.exists()):
        return Resolved(source, revision, None)
    if "/" in source or source.startswith("~"):
        return Resolved(source, revision, None)
    zoo = load_zoo()
    entry = zoo.get(source)
    if entry is None:
        expected = ("a folder holding config.json and model.safetensors, a Hub id of the form 'org/name' or a zoo "
                    "model name" if kind == "model" else
                    "a .safetensors file or folder, a Hub id of the form 'org/name' or a zoo backbone name")
        missing = "no such model folder" if kind == "model" else "no such file or folder"
        raise FileNotFoundError(f"{source}: {missing} (expected {expected}); {_choices(source, zoo, kind)}")
    if entry.kind != kind:
        raise ValueError(_wrong_kind(entry))
    folder = entry.bundled_folder
    if folder is not None and revision is None:
        if kind == "backbone" and (folder / BACKBONE_FILE).is_file():
            return Resolved(folder / BACKBONE_FILE, None, entry)
        return Resolved(folder, None, entry)
    if entry.hub_id is None:
        why = f"revision={revision!r} applies to Hub ids only" if folder is not None else \
            f"its bundled copy ({entry.bundled}) is not in this install"
        raise FileNotFoundError(f"zoo {entry.kind} {entry.name!r} has no Hub id and {why}")
    return Resolved(entry.hub_id, revision if revision is not None else entry.revision, entry)


def _choices(name: str, zoo: dict[str, ZooEntry], kind: str | None) -> str:
    names = [n for n, e in zoo.items() if kind is None or e.kind == kind]
    if not names:
        what = "model or backbone is" if kind is None else f"{kind} is"
        return f"no {what} released in the zoo yet (the first releases are being trained; `m2dino models` lists it)"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"zoo {'entries' if kind is None else kind + 's'}: {', '.join(names)}{hint}"


def _wrong_kind(entry: ZooEntry) -> str:
    name = entry.name
    use = (f'M2DINO.from_pretrained("{name}") or --model {name}' if entry.kind == "model" else
           f'--pretrained {name} in a recipe or M2DINO(config, backbone_weights="{name}")')
    return f"zoo entry {name!r} is a {entry.kind}, not a {'backbone' if entry.kind == 'model' else 'model'}: " \
           f"use it as {use}"


# ------------------------------------------------------------------------------------------- validation
def _parse_entry(raw: Any, where: str, root: Path) -> ZooEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object, got {type(raw).__name__}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{where}: field 'name': expected letters, digits, '.', '_' or '-' (no '/'), got {name!r}")
    where = f"{where} ({name})"

    def fail(field: str, expected: str) -> ValueError:
        return ValueError(f"{where}: field {field!r}: expected {expected}, got {raw.get(field)!r}")

    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} (fields: {', '.join((*_REQUIRED, *_OPTIONAL))})")
    missing = [field for field in _REQUIRED if field not in raw]
    if missing:
        raise ValueError(f"{where}: field {missing[0]!r} is missing")
    values = {**_OPTIONAL, **raw}
    if values["kind"] not in KINDS:
        raise fail("kind", " or ".join(repr(k) for k in KINDS))
    if values["hub_id"] is not None and not (isinstance(values["hub_id"], str) and _HUB_ID.match(values["hub_id"])):
        raise fail("hub_id", "a Hub id of the form 'org/name' or null")
    if values["revision"] is not None and not (isinstance(values["revision"], str) and values["revision"]):
        raise fail("revision", "a Hub revision (branch, tag or commit) or null")
    _check_bundled(values["bundled"], root, fail)
    if values["hub_id"] is None and values["bundled"] is None:
        raise fail("hub_id", "a Hub id when 'bundled' is null (an entry must be reachable)")
    for field in ("backbone", "license"):
        if not isinstance(values[field], str) or not values[field].strip():
            raise fail(field, "a non-empty string")
    params = positive_int(f"{where}: field 'params'", values["params"])
    size = values["input_size"]
    sides = [size] if isinstance(size, int) else size if isinstance(size, list) and len(size) == 2 else None
    if sides is None:
        raise fail("input_size", "a side in pixels or [height, width]")
    input_size = tuple(positive_int(f"{where}: field 'input_size'", side, "input_side") for side in sides)
    tasks = values["tasks"]
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks) or \
            (values["kind"] == "model" and not tasks):
        raise fail("tasks", "a list of task ids" + (" (at least one for a model)" if values["kind"] == "model" else ""))
    training_data = _records(values["training_data"], "training_data", _DATA_FIELDS["required"],
                             _DATA_FIELDS["optional"], where)
    metrics = _records(values["metrics"], "metrics", _METRIC_FIELDS, (), where)
    for index, metric in enumerate(metrics):
        finite_number(f"{where}: field 'metrics'[{index}].value", metric["value"])
        if metric["task"] not in tasks and values["kind"] == "model":
            raise ValueError(f"{where}: field 'metrics'[{index}].task: {metric['task']!r} is not in the entry's tasks")
    return ZooEntry(name=name, kind=values["kind"], hub_id=values["hub_id"], bundled=values["bundled"],
                    backbone=values["backbone"], params=params,
                    input_size=(input_size[0], input_size[-1]), tasks=tuple(tasks), training_data=training_data,
                    metrics=metrics, license=values["license"], revision=values["revision"], root=root)


def _check_bundled(bundled: Any, root: Path, fail) -> None:
    """A relative folder inside the registry's folder (symlinks resolved): a registry names only its own files."""
    if bundled is None:
        return
    if not isinstance(bundled, str) or not bundled or Path(bundled).is_absolute() or "\\" in bundled:
        raise fail("bundled", "a folder path relative to the registry's folder, or null")
    if not (root / bundled).resolve().is_relative_to(root.resolve()) or ".." in Path(bundled).parts:
        raise fail("bundled", "a folder inside the package (the registry's folder), not outside it")


def _records(value: Any, field: str, required: tuple[str, ...], optional: tuple[str, ...],
             where: str) -> tuple[dict[str, Any], ...]:
    """A list of objects with exactly the ``required`` keys (plus any ``optional`` ones); strings except 'value'."""
    if not isinstance(value, list):
        raise ValueError(f"{where}: field {field!r}: expected a list of objects, got {value!r}")
    for index, item in enumerate(value):
        at = f"{where}: field {field!r}[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected an object with {', '.join(required)}, got {item!r}")
        unknown = sorted(set(item) - set(required) - set(optional))
        missing = [key for key in required if key not in item]
        if unknown or missing:
            problem = f"unknown key {unknown[0]!r}" if unknown else f"missing key {missing[0]!r}"
            raise ValueError(f"{at}: {problem} (keys: {', '.join((*required, *optional))})")
        for key, text in item.items():
            if key != "value" and (not isinstance(text, str) or not text.strip()):
                raise ValueError(f"{at}.{key}: expected a non-empty string, got {text!r}")
    return tuple(dict(item) for item in value)
