"""One JSON file per measured cell (a task, an init, a seed) under ``WORK/cells``, so that a rerun of the
benchmark skips what is done and an interrupted one loses at most the cells in flight."""

from __future__ import annotations

import json
from pathlib import Path


def canonical(settings: dict) -> dict:
    """``settings`` as they read back from JSON (tuples become lists), so stored and asked-for compare equal."""
    return json.loads(json.dumps(settings, sort_keys=True))


class CellStore:
    """``get`` returns a stored cell only when it was measured with the same settings; ``put`` writes one."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def get(self, name: str, settings: dict) -> dict | None:
        path = self.path(name)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return record if record.get("settings") == canonical(settings) else None

    def put(self, name: str, settings: dict, values: dict) -> dict:
        record = {"cell": name, "settings": canonical(settings), **values}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        tmp.replace(self.path(name))  # atomic: a killed run never leaves half a cell behind
        return record
