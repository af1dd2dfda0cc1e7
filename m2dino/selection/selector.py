"""One round of active learning: measure the pool with the model, pick ``budget`` images to label."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.errors import DataError
from ..data.unlabeled import UnlabeledSource
from .features import FEATURES, Measured, measure
from .labelled import LabelledSet
from .strategies import PoolMeasures, get_strategy

CSV_COLUMNS = ("image", "score", "rank", "strategy")


@dataclass(frozen=True)
class SelectionConfig:
    strategy: str
    budget: int
    task: str | None = None    # None: the model's only task
    features: str = "pixels"   # what egad and coreset compare: "pixels" or "backbone"
    seed: int = 0
    batch_size: int = 8


@dataclass(frozen=True)
class Pick:
    image: str
    score: float
    rank: int       # 1 = label first
    strategy: str


def model_task(model: torch.nn.Module, task: str | None) -> str:
    """``task`` checked against the model (its error lists the model's tasks), or its only task."""
    if task is None:
        if len(model.task_ids) != 1:
            raise ValueError(f"the model has {len(model.task_ids)} tasks ({', '.join(model.task_ids)}): "
                             "choose one with --task")
        return model.task_ids[0]
    model.task_spec(task)
    return task


def check_selection(pool: UnlabeledSource, config: SelectionConfig, labelled: LabelledSet | None = None
                    ) -> list[int]:
    """The candidate pool indices (not labelled yet), once the request is known to be satisfiable:
    a known strategy and features, a budget the candidates can fill, labelled images when the
    strategy compares against them. Cheap: call it before loading a model."""
    strategy = get_strategy(config.strategy)
    if config.features not in FEATURES:
        raise ValueError(f"unknown features {config.features!r}; expected one of: {', '.join(FEATURES)}")
    labelled = labelled or LabelledSet(frozenset(), None)
    candidates = [i for i in range(len(pool)) if i not in labelled.in_pool]
    if config.budget < 1:
        raise ValueError(f"budget {config.budget}; expected at least 1 image to pick")
    if config.budget > len(candidates):
        already = f" ({len(labelled.in_pool)} of its {len(pool)} images already labelled)" if labelled.in_pool else ""
        raise DataError(f"budget {config.budget} is larger than the pool: {pool.description} has "
                        f"{len(candidates)} unlabelled image(s){already}")
    if strategy.needs_labelled and not labelled.in_pool and labelled.outside is None:
        raise ValueError(f"strategy {strategy.name!r} compares the pool against the labelled images: "
                         "give them with --labelled (a folder or a list of pool files)")
    return candidates


def select(model: torch.nn.Module, pool: UnlabeledSource, config: SelectionConfig,
           labelled: LabelledSet | None = None, progress: bool = False) -> list[Pick]:
    """The ``config.budget`` pool images to label next, best first. Deterministic for ``config.seed``."""
    candidates = check_selection(pool, config, labelled)
    strategy = get_strategy(config.strategy)
    task = model_task(model, config.task)
    labelled = labelled or LabelledSet(frozenset(), None)
    kind = model.task_spec(task).label_kind.name
    features = config.features if strategy.needs_features else None
    was_training = model.training
    model.eval()
    try:
        measured = (measure(model, pool, task, kind, strategy.needs_entropy, features, config.batch_size, progress)
                    if strategy.needs_entropy or features else Measured(None, None))  # random reads no image
        labelled_features = None
        if features is not None:
            parts = [measured.features[sorted(labelled.in_pool)]]
            if labelled.outside is not None:
                parts.append(measure(model, labelled.outside, task, kind, False, features, config.batch_size,
                                     progress, desc="labelled").features)
            labelled_features = np.concatenate(parts)
    finally:
        model.train(was_training)
    measures = PoolMeasures(
        len(candidates),
        measured.entropy[candidates] if measured.entropy is not None else None,
        measured.features[candidates] if measured.features is not None else None,
        labelled_features)
    order, scores = strategy.pick(measures, config.budget, np.random.default_rng(config.seed))
    sources = pool.sources
    return [Pick(sources[candidates[i]], float(s), rank, strategy.name)
            for rank, (i, s) in enumerate(zip(order, scores), start=1)]


def write_picks(picks: list[Pick], path: str | Path, overwrite: bool = True) -> Path:
    """The picks as a CSV (image, score, rank, strategy), one row per image, best first; an existing
    file is replaced only when ``overwrite``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w" if overwrite else "x", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS)
        writer.writerows((p.image, repr(p.score), p.rank, p.strategy) for p in picks)
    return path


__all__ = ["CSV_COLUMNS", "Pick", "SelectionConfig", "check_selection", "model_task", "select", "write_picks"]
