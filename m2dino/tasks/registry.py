"""The task registry: the single source of truth for task ids, types and groups."""

from __future__ import annotations

import difflib
import json
from importlib import resources
from pathlib import Path

from .spec import TaskSpec
from .task_type import TaskType

_REGISTRY: dict[str, TaskSpec] = {}
_BENCHMARK_GROUPS: dict[str, tuple[str, ...]] = {}


class UnknownTaskError(KeyError):
    """A task id that is not registered; the message lists the closest known ids."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


def _load_builtin() -> None:
    data = json.loads(resources.files(__package__).joinpath("tasks.json").read_text())
    for entry in data["benchmark_tasks"]:
        _REGISTRY[entry["id"]] = TaskSpec.from_dict({**entry, "benchmark": True})
    for entry in data["extra_tasks"]:
        _REGISTRY[entry["id"]] = TaskSpec.from_dict(entry)
    _BENCHMARK_GROUPS.update({group: tuple(ids) for group, ids in data["groups"].items()})


def get_task(task_id: str) -> TaskSpec:
    """The spec of ``task_id``; an unknown id raises `UnknownTaskError` naming the closest ids."""
    if isinstance(task_id, TaskSpec):
        return task_id
    try:
        return _REGISTRY[task_id]
    except KeyError:
        close = difflib.get_close_matches(str(task_id), _REGISTRY, n=5, cutoff=0.4)
        hint = f"; closest known ids: {', '.join(close)}" if close else ""
        raise UnknownTaskError(f"unknown task id {task_id!r}{hint} "
                               f"(m2dino.list_tasks(benchmark=None) lists all {len(_REGISTRY)})") from None


def list_tasks(type: TaskType | str | None = None, group: str | None = None,
               benchmark: bool | None = True) -> list[TaskSpec]:
    """Registered tasks in registry order, filtered by type, clinical group and origin.

    ``benchmark=True`` (the default) gives the 27 FMC_UIA tasks, ``False`` the others (adapter
    tasks and the user's own), ``None`` all of them.
    """
    task_type = TaskType(type) if type is not None else None
    if group is not None and group not in {t.group for t in _REGISTRY.values()}:
        known = sorted({t.group for t in _REGISTRY.values()})
        raise ValueError(f"unknown clinical group {group!r}; known groups: {', '.join(known)}")
    return [t for t in _REGISTRY.values()
            if (task_type is None or t.type is task_type)
            and (group is None or t.group == group)
            and (benchmark is None or t.benchmark == benchmark)]


def register_task(spec: TaskSpec, overwrite: bool = False) -> TaskSpec:
    """Add a user's task. Re-registering an identical spec is a no-op; a different one needs
    ``overwrite=True`` because models and datasets built against the old spec would break."""
    existing = _REGISTRY.get(spec.id)
    if existing is not None and existing != spec and not overwrite:
        raise ValueError(f"task id {spec.id!r} is already registered with a different spec; "
                         "pass overwrite=True to replace it")
    _REGISTRY[spec.id] = spec
    return spec


def unregister_task(task_id: str) -> None:
    """Remove a user's task (the built-in benchmark tasks cannot be removed)."""
    spec = get_task(task_id)
    if spec.benchmark:
        raise ValueError(f"task {task_id!r} is a benchmark task and cannot be unregistered")
    del _REGISTRY[task_id]


def benchmark_groups() -> dict[str, tuple[str, ...]]:
    """This project's clinical grouping of the 27 benchmark tasks: group -> task ids."""
    return dict(_BENCHMARK_GROUPS)


def load_group_mapping(path: str | Path) -> dict[str, tuple[str, ...]]:
    """A user's grouping from a JSON or YAML file ``{group: [task ids]}``, validated."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            mapping = yaml.safe_load(text)
        except yaml.YAMLError as err:  # includes python/object tags, which safe_load refuses
            problem = str(err).splitlines()[0]
            raise ValueError(f"{path}: not a plain YAML config ({problem})") from None
    else:
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError(f"{path}: expected a non-empty mapping of group name -> list of task ids")
    groups: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    for group, ids in mapping.items():
        if not isinstance(ids, list) or not ids:
            raise ValueError(f"{path}: group {group!r} must be a non-empty list of task ids")
        for task_id in ids:
            try:
                get_task(task_id)
            except UnknownTaskError as err:
                raise ValueError(f"{path}: group {group!r}: {err}") from None
            if task_id in seen:
                raise ValueError(f"{path}: task {task_id!r} is in both {seen[task_id]!r} and {group!r}")
            seen[task_id] = group
        groups[str(group)] = tuple(ids)
    return groups


_load_builtin()
