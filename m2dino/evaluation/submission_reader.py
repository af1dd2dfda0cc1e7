"""Reading a submission folder back: typed predictions per task, bad entries kept as `InvalidPrediction`.

A file that cannot be a submission (not JSON, not a list, an entry without its identity or its
prediction key) is an error naming the file and entry index. A well-formed entry whose values are
unusable (a class that is not an integer, a box of three numbers) is kept as an `InvalidPrediction`
so the scorer can count it for its task instead of stopping the whole run.

A submission is scored on its own files only: a link that leaves the folder (a predicted mask
linked to the ground-truth mask would score Dice 1) refuses the whole submission, naming the links,
and masks are decoded only within `m2dino.limits`' pixel bound.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..image.io import ImageFormatError, open_image
from .entries import Entry, InvalidPrediction
from .kind_evaluations import EVALUATIONS, KindEvaluation
from .submission import prediction_mask_path

__all__ = ["Entry", "InvalidPrediction", "Submission", "SubmissionFormatError", "read_submission"]

LINKS_SHOWN = 5   # links leaving a submission named in its refusal


class SubmissionFormatError(ValueError):
    """A submission file that cannot be read as the benchmark's format."""


@dataclass
class Submission:
    root: Path
    # label kind -> task id -> image_path (CSV string) -> prediction. `ClassificationPrediction.probs`
    # is None when the entry gave no predicted_probs.
    predictions: dict[str, dict[str, dict[str, Entry]]]
    duplicates: Counter = field(default_factory=Counter)    # task id -> repeated entries (the last one is kept)
    absent_files: list[str] = field(default_factory=list)   # prediction files not in the folder

    def task_predictions(self, kind: str, task_id: str) -> dict[str, Entry]:
        return self.predictions.get(kind, {}).get(task_id, {})

    def mask_files(self) -> set[str]:
        """Every PNG under the folder, as submission-relative POSIX paths (to find stray masks)."""
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*.png")}

    def load_mask(self, mask_path: str) -> np.ndarray | InvalidPrediction | None:
        """The predicted mask for the ground-truth ``mask_path``: None when there is no file, an
        `InvalidPrediction` when it is not an 8-bit gray image."""
        relative = prediction_mask_path(mask_path)
        path = self.root / relative
        if not path.is_file():
            return None
        target = _outside(path, self.root.resolve())
        if target is not None:  # `read_submission` refuses these; a `Submission` built by hand may hold one
            return InvalidPrediction(f"{relative}: links to {target}, outside the submission folder")
        try:
            with open_image(path, relative) as image:  # the pixel bound, before decoding
                if image.mode != "L":
                    return InvalidPrediction(f"{relative}: {image.mode} image; expected an 8-bit gray PNG")
                image.load()
                return np.asarray(image)
        except ImageFormatError as err:  # unreadable, a decompression bomb, or beyond the pixel bound
            return InvalidPrediction(str(err))
        except (OSError, SyntaxError) as err:
            return InvalidPrediction(f"{relative}: not a readable image ({err})")


def _outside(path: Path, real_root: Path) -> Path | None:
    """Where ``path`` really leads when that is outside ``real_root``, else None (a link loop leads
    nowhere: it reads as a missing or unreadable file)."""
    try:
        target = path.resolve()
    except (OSError, RuntimeError):
        return None
    return None if target.is_relative_to(real_root) else target


def _links_leaving(root: Path) -> list[str]:
    """``relative -> target`` for every link under ``root`` (file or folder) that leads outside it."""
    real_root = root.resolve()
    leaving = []
    for folder, folders, files in os.walk(root):  # a linked folder is listed (and checked), not entered
        for name in sorted(folders + files):
            path = Path(folder) / name
            if path.is_symlink():
                target = _outside(path, real_root)
                if target is not None:
                    leaving.append(f"{path.relative_to(root).as_posix()} -> {target}")
    return sorted(leaving)


def _read_file(path: Path, evaluation: KindEvaluation, duplicates: Counter) -> dict[str, dict[str, Entry]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SubmissionFormatError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, list):
        raise SubmissionFormatError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    by_task: dict[str, dict[str, Entry]] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise SubmissionFormatError(f"{path}: entry {index}: expected an object, got {type(entry).__name__}")
        for name in ("image_path", "task_id"):
            if not isinstance(entry.get(name), str):
                raise SubmissionFormatError(f"{path}: entry {index}: missing or non-string {name!r}")
        if evaluation.key not in entry:
            raise SubmissionFormatError(f"{path}: entry {index}: missing key {evaluation.key!r}")
        task = by_task.setdefault(entry["task_id"], {})
        if entry["image_path"] in task:
            duplicates[entry["task_id"]] += 1
        task[entry["image_path"]] = evaluation.parse(entry)
    return by_task


def read_submission(path: str | Path) -> Submission:
    """Read a submission folder; a missing JSON file means no predictions of that kind."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"submission folder not found: {root}")
    leaving = _links_leaving(root)
    if leaving:
        more = f" and {len(leaving) - LINKS_SHOWN} more" if len(leaving) > LINKS_SHOWN else ""
        raise SubmissionFormatError(f"{root}: {len(leaving)} link(s) lead outside the submission folder: "
                                    f"{', '.join(leaving[:LINKS_SHOWN])}{more}; expected the submission's own "
                                    "files (copy them in)")
    duplicates: Counter = Counter()
    predictions, absent = {}, []
    for evaluation in EVALUATIONS.values():
        if evaluation.file is None:
            continue
        file = root / evaluation.file
        if file.is_file():
            predictions[evaluation.kind] = _read_file(file, evaluation, duplicates)
        elif evaluation.official:
            absent.append(evaluation.file)
    return Submission(root, predictions, duplicates, absent)
