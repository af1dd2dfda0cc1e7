"""A release config checked against the files it names, before any pretraining or training starts.

Each problem is one error naming the field and what was expected: a task the training data or the test
splits lack, a test root without a task of the release, an unknown example scan, a permissive licence
over non-commercial data, an output folder that already holds something.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ..data.adapters import ADAPTERS
from ..data.fmc import CSV_DIR
from ..data.synthetic import RECIPES
from ..tasks import get_task
from ..visualize.examples import example_images
from .licensing import LicenseDecision, weights_license
from .release_config import ReleaseConfig


def check_release(config: ReleaseConfig, overwrite: bool = False) -> tuple[dict[str, list[str]], LicenseDecision]:
    """Dataset → the release's tasks in its test root, and the weights' licence; raises on the first problem."""
    for task in config.tasks:
        get_task(task)  # an unknown task id: the registry's own error, naming the choices
    offered = {source: source_tasks(source) for source in config.run.data.sources}
    if all(tasks is not None for tasks in offered.values()):  # else a source is only known once it is read
        known = set().union(*offered.values())
        missing = [t for t in config.tasks if t not in known]
        if missing:
            raise ValueError(f"run.data.tasks: {missing} are not in the training data {config.run.data.sources} "
                             f"(it has {sorted(known)})")
    tested = {}
    for dataset, root in config.test.items():
        found = fmc_root_tasks(root, f"test.{dataset}")
        tested[dataset] = [t for t in config.tasks if t in found]
        if not tested[dataset]:
            raise ValueError(f"test.{dataset}: {root} holds none of the release's tasks {config.tasks} (it has "
                             f"{sorted(found)}); every test split must score a trained task")
    untested = [t for t in config.tasks if not any(t in tasks for tasks in tested.values())]
    if untested:
        raise ValueError(f"test: no test split holds {untested}; add the test root of the dataset they come from")
    example_paths(config)
    decision = weights_license(config.licenses, config.license)
    check_release_folder(config.folder, overwrite, "run.output_dir", config.run.output_dir, "the training run")
    return tested, decision


def check_release_folder(folder: Path, overwrite: bool, work_field: str, work_dir: str, work: str) -> None:
    """A release's output folder is free (or ``overwrite``), and ``work_dir`` (``work_field``: the run
    that makes the release) writes outside it: the release folder holds only the released files."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"output_dir {folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"output_dir {folder}: not empty (an earlier release?); pass --overwrite to replace "
                              "it, or choose another output_dir")
    inside = Path(work_dir).resolve()
    if inside == folder.resolve() or folder.resolve() in inside.parents:
        raise ValueError(f"{work_field} {work_dir} is inside output_dir {folder}: the release folder holds only the "
                         f"released files (it is uploaded whole); give {work} its own folder")


def source_tasks(source: str) -> set[str] | None:
    """The tasks a training source can give (None: not known before it is read, e.g. a folder adapter)."""
    if source == "synthetic":
        return set(RECIPES)
    if ":" in source and not Path(source).exists():
        adapter = ADAPTERS.get(source.split(":", 1)[0])
        return set(adapter.TASKS) if adapter is not None and hasattr(adapter, "TASKS") else None
    return fmc_root_tasks(source, f"run.data.sources {source!r}")


def fmc_root_tasks(root: str | Path, where: str) -> set[str]:
    """The task ids of an FMC root's CSV rows (the CSVs alone are read: no image is opened)."""
    csv_dir = Path(root) / CSV_DIR
    if not csv_dir.is_dir():
        raise FileNotFoundError(f"{where}: {root} is not an FMC_UIA root (expected {csv_dir})")
    tasks: set[str] = set()
    for file in sorted(csv_dir.glob("*.csv")):
        with file.open(newline="") as handle:
            tasks |= {row["task_id"].strip() for row in csv.DictReader(handle) if row.get("task_id")}
    return tasks


def example_paths(config: ReleaseConfig) -> list[Path]:
    """The scans the card's overlays are drawn on: the config's (each must be a file), else the synthetic two."""
    if config.examples is None:
        return example_images()
    paths = [Path(p) for p in config.examples]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"examples: no such scan {missing[0]} (expected image files, e.g. CC BY scans; "
                                "null uses m2dino's two synthetic examples)")
    return paths
