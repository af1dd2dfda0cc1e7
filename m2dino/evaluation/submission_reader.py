"""Reading a submission folder back: typed predictions per task, bad entries kept as `InvalidPrediction`.

A file that cannot be a submission (not JSON, not a list, an entry without its identity or its
prediction key) is an error naming the file and entry index. A well-formed entry whose values are
unusable (a class that is not an integer, a box of three numbers) is kept as an `InvalidPrediction`
so the scorer can count it for its task instead of stopping the whole run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .entries import Entry, InvalidPrediction
from .kind_evaluations import EVALUATIONS, KindEvaluation
from .submission import prediction_mask_path

__all__ = ["Entry", "InvalidPrediction", "Submission", "SubmissionFormatError", "read_submission"]


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
        try:
            with Image.open(path) as image:
                image.load()
                if image.mode != "L":
                    return InvalidPrediction(f"{relative}: {image.mode} image; expected an 8-bit gray PNG")
                return np.asarray(image)
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            return InvalidPrediction(f"{relative}: not a readable image ({err})")


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
