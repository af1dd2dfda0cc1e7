"""To and from Hugging Face `datasets`: one `datasets.Dataset` per task, images as `Image` features.

Columns: ``image`` (Image), ``task`` (string), ``label`` (by kind: mask -> Image of class indices,
class -> ClassLabel with the registry's names, boxes -> list of [x_min, y_min, x_max, y_max],
keypoints -> list of [x, y], scalar -> float64), ``original_size`` ([H, W]), ``source`` and
``meta`` (JSON). Masks and images are stored as PNG, so the round trip is lossless.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from ..tasks import get_task
from .errors import DataError
from .sample import Sample, meta_to_json

_CHUNK = 256  # samples encoded at a time, to bound memory on large tasks


def hf_features(task: str):
    """The `datasets.Features` of ``task``'s samples."""
    import datasets

    label = get_task(task).label_kind.hf_feature()
    return datasets.Features({"image": datasets.Image(), "task": datasets.Value("string"), "label": label,
                              "original_size": datasets.List(datasets.Value("int64"), length=2),
                              "source": datasets.Value("string"), "meta": datasets.Value("string")})


def to_hf_dataset(samples: Iterable[Sample], task: str | None = None):
    """A `datasets.Dataset` of the samples of one task (``task``, or the only task present)."""
    import datasets

    rows = _rows(samples, task)
    first = next(rows, None)
    if first is None:
        raise DataError(f"no samples{f' of task {task!r}' if task else ''} to export")
    task = first["task"]
    features = hf_features(task)
    parts, chunk = [], [first]
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            parts.append(datasets.Dataset.from_list(chunk, features=features))
            chunk = []
    if chunk:
        parts.append(datasets.Dataset.from_list(chunk, features=features))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _rows(samples: Iterable[Sample], task: str | None) -> Iterator[dict[str, Any]]:
    for sample in samples:
        if task is None:
            task = sample.task
        if sample.task != task:
            continue
        yield {"image": sample.image, "task": sample.task, "label": sample.spec.label_kind.to_hf(sample.label),
               "original_size": list(sample.original_size), "source": sample.source,
               "meta": meta_to_json(sample.meta)}


def from_hf_dataset(dataset) -> list[Sample]:
    """Samples back from a dataset made by `to_hf_dataset` (or with the same columns)."""
    missing = {"image", "task", "label"} - set(dataset.column_names)
    if missing:
        raise DataError(f"dataset lacks column(s) {', '.join(sorted(missing))}; expected image, task, label "
                        "(and optionally original_size, source, meta)")
    samples = []
    for i, row in enumerate(dataset):
        spec = get_task(row["task"])
        label = spec.label_kind.from_hf(row["label"])
        meta = json.loads(row.get("meta") or "{}")
        try:
            samples.append(Sample(np.asarray(row["image"].convert("RGB")), spec.id, label,
                                  original_size=tuple(row["original_size"]) if row.get("original_size") else None,
                                  source=row.get("source") or f"datasets row {i}", meta=meta))
        except DataError as err:
            raise DataError(f"dataset row {i}: {err}") from None
    return samples


def push_to_hub(samples: Iterable[Sample], repo_id: str, task: str | None = None, split: str = "train",
                **kwargs: Any) -> None:
    """Export one task's samples and push them as config ``<task>`` of ``repo_id`` (needs a login)."""
    dataset = to_hf_dataset(samples, task)
    dataset.push_to_hub(repo_id, config_name=dataset.select_columns("task")[0]["task"], split=split, **kwargs)

