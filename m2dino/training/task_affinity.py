"""Lookahead inter-task affinity (Fifty et al., "Efficiently Identifying Task Groupings for
Multi-Task Learning", NeurIPS 2021) and the task grouping it recommends.

During a multi-task run, the affinity of task i onto task j at step t is how much one update of
the shared parameters on task i's loss alone lowers task j's loss on its own batch:

    Z[i, j] = 1 − L_j(θ_s − Δ_i, θ_j) / L_j(θ_s, θ_j)

Positive Z[i, j]: a step for i helps j; negative: it hurts j. Averaged over the run, the matrix
says which tasks to train together. The shared parameters are the backbone's; the task heads do
not move. Δ_i = lr · g_i, the paper's plain gradient step, at the backbone's base learning rate
(not the scheduled one: a cosine schedule would shrink the late measurements towards 0 and let
the early ones decide the mean). It is small enough to stay first-order (Z[i, j] ≈ lr·⟨g_i, g_j⟩ / L_j),
and every task's step is
taken with the same rule. An AdamW-shaped step, lr · g_i / √v̂ with the run's shared second
moments, was tried and rejected: without momentum it is several times larger than a real step
for the task that dominates v̂, and it raised that task's own loss (Z[i, i] < 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data import Sample
from ..data.torch_dataset import Collate, MultiTaskDataset
from ..models.model_config import M2DINOConfig
from ..models.multitask import M2DINO


def task_losses(core: M2DINO, batches: Mapping[str, dict]) -> dict[str, torch.Tensor]:
    """Each task's loss (without the MoE balancing term) on its own batch."""
    losses = {}
    for task, batch in batches.items():
        output = core(batch["pixel_values"], task=task)
        losses[task] = core.loss(output, batch["targets"], return_parts=True)["task_loss"]
    return losses


def lookahead_affinity(core: M2DINO, batches: Mapping[str, dict], lr: float) -> np.ndarray:
    """One measurement: Z[i, j] for the tasks of ``batches`` (in its order), from one lookahead
    step per task on the backbone's parameters. The model's weights are restored exactly."""
    tasks = list(batches)
    shared = [p for p in core.backbone.parameters() if p.requires_grad]
    was_training = core.training
    core.train()  # the losses of a training step (dropout, drop-path as configured)
    before = task_losses(core, batches)
    steps = []
    for task in tasks:
        grads = torch.autograd.grad(before[task], shared, allow_unused=True, retain_graph=True)
        steps.append([None if g is None else lr * g for g in grads])
    base = torch.stack([before[t].detach() for t in tasks])
    saved = [p.detach().clone() for p in shared]
    affinity = np.zeros((len(tasks), len(tasks)))
    with torch.no_grad():
        for i, step in enumerate(steps):
            for p, delta in zip(shared, step):
                if delta is not None:
                    p.sub_(delta)
            after = task_losses(core, batches)
            affinity[i] = (1 - torch.stack([after[t] for t in tasks]) / base).cpu().numpy()
            for p, original in zip(shared, saved):
                p.copy_(original)
    core.train(was_training)
    return affinity


class ProbeBatches:
    """A fresh augmented training batch of every task per measurement, drawn with the training
    transform (`MultiTaskDataset`), seeded by the measurement's index so a rerun repeats it."""

    def __init__(self, samples: Mapping[str, Sequence[Sample]], config: M2DINOConfig, batch_size: int,
                 seed: int = 0) -> None:
        self.dataset = MultiTaskDataset(samples, config.preprocessing, train=True)
        self.collate = Collate(config.preprocessing)
        self.batch_size, self.seed = batch_size, seed

    def draw(self, index: int) -> dict[str, dict]:
        rng = np.random.default_rng([self.seed, index])
        batches = {}
        for task, size in self.dataset.task_sizes.items():
            chosen = rng.choice(size, size=min(self.batch_size, size), replace=False)
            seeds = rng.integers(0, 2**31, size=len(chosen))
            batches[task] = self.collate([self.dataset[(task, int(i), int(s))] for i, s in zip(chosen, seeds)])
        return batches


class AffinityTracker:
    """A `Trainer` step callback: every ``every`` steps, one lookahead measurement on fresh probe
    batches of ``samples`` (the training samples) at the backbone's base learning rate;
    ``mean`` is the run's affinity matrix.

    ``log``: a JSON-lines file that gets every measurement as it is made. With ``resume``, the
    measurements it holds from before the step the run resumes at are kept, so a resumed run's
    matrix is the one an uninterrupted run would give; without, it starts empty.
    """

    def __init__(self, samples: Mapping[str, Sequence[Sample]], every: int, batch_size: int = 16,
                 seed: int = 0, log: str | Path | None = None, resume: bool = False) -> None:
        if every < 1:
            raise ValueError(f"affinity: measure every N >= 1 steps, got {every}")
        if len(samples) < 2:
            raise ValueError(f"affinity needs at least 2 tasks, got {sorted(samples)}")
        self.samples, self.every, self.batch_size, self.seed = samples, every, batch_size, seed
        self.log, self.resume = (Path(log) if log is not None else None), resume
        self.measurements: list[dict] = []
        self._probes: ProbeBatches | None = None  # built by `_start`

    def _start(self, trainer, step: int) -> None:
        """At the first measurement (the output folder is the run's by then): the probes, with the
        model's preprocessing; the earlier measurements of a resumed run, and a log that holds
        exactly them."""
        self._probes = ProbeBatches(self.samples, trainer.core.config, self.batch_size, self.seed)
        if self.resume and self.log is not None and self.log.is_file():
            lines = self.log.read_text().splitlines()
            self.measurements = [m for m in map(json.loads, filter(None, lines)) if m["step"] < step]
        if self.log is not None and trainer.accelerator.is_main_process:
            self.log.write_text("".join(json.dumps(m) + "\n" for m in self.measurements))

    def __call__(self, trainer, step: int) -> None:
        if step % self.every:
            return
        if self._probes is None:
            self._start(trainer, step)
        core = trainer.core
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # accelerate's wrapper
        lr = _backbone_lr(core, optimizer)
        matrix = lookahead_affinity(core, self._probes.draw(len(self.measurements)), lr)
        self.measurements.append({"step": step, "lr": lr, "affinity": matrix.tolist()})
        if self.log is not None and trainer.accelerator.is_main_process:
            with self.log.open("a") as handle:
                handle.write(json.dumps(self.measurements[-1]) + "\n")

    @property
    def tasks(self) -> list[str]:
        return list(self.samples)

    def mean(self) -> np.ndarray:
        if not self.measurements:
            raise ValueError("no affinity measured: the run was shorter than one measurement interval")
        return np.mean([m["affinity"] for m in self.measurements], axis=0)

    def report(self, clinical: Mapping[str, Sequence[str]]) -> dict:
        """The mean matrix, how stable it is, and for every number of groups k the best partition,
        beside the ``clinical`` grouping (`recommended_groups` picks one as a ``--groups`` file)."""
        tasks, mean = self.tasks, self.mean()
        index = {t: i for i, t in enumerate(tasks)}
        matrices = [np.array(m["affinity"]) for m in self.measurements]
        half = len(matrices) // 2
        off_diagonal = ~np.eye(len(tasks), dtype=bool)
        recommended = {}
        for k in range(1, len(tasks) + 1):
            groups = best_grouping(mean, tasks, k)
            recommended[str(k)] = {"groups": groups,
                                   "score": grouping_score(mean, [[index[t] for t in g] for g in groups])}
        return {
            "tasks": tasks, "every": self.every, "probe_batch": self.batch_size, "mean": mean.tolist(),
            "measurements": self.measurements,
            # correlation of the off-diagonal entries between the run's first and second half
            "halves_correlation": (float(np.corrcoef(np.mean(matrices[:half], axis=0)[off_diagonal],
                                                     np.mean(matrices[half:], axis=0)[off_diagonal])[0, 1])
                                   if half else None),
            "clinical": {"groups": {g: list(m) for g, m in clinical.items()},
                         "score": grouping_score(mean, [[index[t] for t in m] for m in clinical.values()])},
            "recommended": recommended,
            "num_groups": len(clinical),
        }


def recommended_groups(report: Mapping, num_groups: int | None = None) -> dict[str, list[str]]:
    """The best partition into ``num_groups`` groups (default: as many as the clinical grouping),
    as the ``{group: [tasks]}`` mapping `recipes/grouped.py --groups` reads."""
    k = num_groups or report["num_groups"]
    if str(k) not in report["recommended"]:
        raise ValueError(f"affinity groups: {k} groups asked for {len(report['tasks'])} tasks; "
                         f"expected 1..{len(report['tasks'])}")
    return {f"affinity_{i + 1}": list(members) for i, members in enumerate(report["recommended"][str(k)]["groups"])}


def _backbone_lr(core: M2DINO, optimizer: torch.optim.Optimizer) -> float:
    backbone = {id(p) for p in core.backbone.parameters()}
    for group in optimizer.param_groups:
        if any(id(p) in backbone for p in group["params"]):
            return float(group.get("initial_lr", group["lr"]))  # initial_lr: set by the lr scheduler
    raise ValueError("the optimizer holds none of the backbone's parameters")


# ------------------------------------------------------------------------------ grouping
def grouping_score(affinity: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """Σ over tasks j of the mean affinity onto j from the other members of j's group (a task
    alone in its group gets 0: nothing from others, for better or worse)."""
    total = 0.0
    for members in groups:
        for j in members:
            others = [i for i in members if i != j]
            if others:
                total += float(np.mean([affinity[i, j] for i in others]))
    return total


def _partitions(items: list[int], blocks: int) -> Iterator[list[list[int]]]:
    """Every partition of ``items`` into exactly ``blocks`` non-empty groups."""
    if blocks == 1:
        yield [items]
        return
    if len(items) == blocks:
        yield [[i] for i in items]
        return
    first, rest = items[0], items[1:]
    for partition in _partitions(rest, blocks - 1):  # ``first`` alone
        yield [[first], *partition]
    for partition in _partitions(rest, blocks):  # ``first`` joins one of the groups
        for index in range(len(partition)):
            yield [*partition[:index], [first, *partition[index]], *partition[index + 1:]]


def best_grouping(affinity: np.ndarray, tasks: Sequence[str], num_groups: int) -> list[list[str]]:
    """The partition of ``tasks`` into ``num_groups`` groups with the highest `grouping_score`
    (exhaustive: Stirling S(n, k) partitions, e.g. 5,880 for 10 tasks in 7 groups)."""
    n = len(tasks)
    if affinity.shape != (n, n):
        raise ValueError(f"affinity matrix of shape {affinity.shape} for {n} tasks")
    if not 1 <= num_groups <= n:
        raise ValueError(f"num_groups must be in 1..{n} (the number of tasks), got {num_groups}")
    best = max(_partitions(list(range(n)), num_groups), key=lambda p: grouping_score(affinity, p))
    return sorted(([tasks[i] for i in group] for group in best), key=lambda g: (-len(g), g))


__all__ = ["AffinityTracker", "ProbeBatches", "best_grouping", "grouping_score", "lookahead_affinity",
           "recommended_groups", "task_losses"]
