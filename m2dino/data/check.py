"""`m2dino data check`: a per-task summary of an FMC root (count, classes, image sizes, problems)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..tasks import get_task
from .errors import DataError
from .fmc import FMCRecord, scan_fmc


@dataclass
class TaskReport:
    task: str
    count: int = 0
    classes: Counter = field(default_factory=Counter)     # class name -> images (or boxes / samples)
    image_sizes: Counter = field(default_factory=Counter)  # (H, W) -> images
    values: list[float] = field(default_factory=list)      # scalar tasks
    problems: list[str] = field(default_factory=list)


def check_fmc(root: str | Path, tasks: list[str] | None = None, decode: bool = True,
              progress: bool = False) -> dict[str, TaskReport]:
    """Validate every row of an FMC root and summarise it per task (``"(unknown)"`` collects
    problems of rows whose task cannot be told). With ``decode`` every image and mask is decoded,
    which catches truncated files and out-of-range mask values and counts segmentation classes
    (images in which each class occurs); without it only the index-time checks run."""
    records, problems = scan_fmc(root, tasks)
    reports: dict[str, TaskReport] = {}

    def report(task: str | None) -> TaskReport:
        key = task or "(unknown)"
        return reports.setdefault(key, TaskReport(key))

    for problem in problems:
        report(problem.task).problems.append(problem.message)
    for record in tqdm(records, desc=f"checking {root}", unit="row", disable=not progress):
        entry = report(record.task_id)
        entry.count += 1
        entry.image_sizes[record.image_size] += 1
        try:
            _count_labels(entry, record, decode)
        except DataError as err:
            entry.problems.append(str(err))
    return reports


def _count_labels(entry: TaskReport, record: FMCRecord, decode: bool) -> None:
    kind = get_task(record.task_id).label_kind
    if kind.stored_as_file and not decode:
        return  # the mask's classes are known only once it is decoded
    if decode:
        record.load_image()
    found = kind.describe(record.load_mask() if kind.stored_as_file else record.label)
    if isinstance(found, float):
        entry.values.append(found)
    else:
        entry.classes.update(found)


def format_report(reports: dict[str, TaskReport], max_problems: int = 5) -> str:
    """A plain-text table, one line per task, then the problems."""
    lines = [f"{'task':<26} {'count':>6}  {'image sizes (H×W)':<40} classes / values"]
    for entry in reports.values():
        sizes = ", ".join(f"{h}×{w} ({n})" for (h, w), n in entry.image_sizes.most_common(2))
        if len(entry.image_sizes) > 2:
            sizes += f", +{len(entry.image_sizes) - 2} more"
        if entry.values:
            labels = f"{min(entry.values):.4g}..{max(entry.values):.4g} (mean {np.mean(entry.values):.4g})"
        else:
            labels = ", ".join(f"{name}: {n}" for name, n in entry.classes.items())
        flag = f"  [{len(entry.problems)} problem(s)]" if entry.problems else ""
        lines.append(f"{entry.task:<26} {entry.count:>6}  {sizes:<40} {labels}{flag}")
    for entry in reports.values():
        for message in entry.problems[:max_problems]:
            lines.append(f"PROBLEM {entry.task}: {message}")
        if len(entry.problems) > max_problems:
            lines.append(f"PROBLEM {entry.task}: ... and {len(entry.problems) - max_problems} more")
    return "\n".join(lines)
