"""One task per batch, tasks drawn ∝ n_task^α, identical on every process of a distributed run.

An epoch is a fixed plan made from ``(seed, epoch)`` alone, so every rank computes the same one
without communicating and a run can resume at any step:

* ``len(sampler)`` steps, the number of batches one rank needs to see every sample of every task
  once: ``Σ_t batches_per_pass(t)`` with ``batches_per_pass(t) = ceil(shard_t / batch_size)``
  (``floor`` with ``drop_last``), ``shard_t`` = this rank's share of task t.
* The steps are split between tasks in proportion to ``p_t ∝ n_t^α`` (largest-remainder rounding,
  so the counts are exact, not random) and the order of the steps is shuffled. With α = 1 every
  task gets about one pass per epoch; with α < 1 small tasks are revisited and large ones
  subsampled (each epoch reshuffles, so all their samples get seen over epochs).
* Within a task, each pass is a fresh permutation of its indices; rank r takes positions
  r, r+R, ... of it (padded by wrapping so all ranks get the same number, or truncated with
  ``drop_last``), then consecutive batches. Passes never mix inside a batch, so a batch has no
  duplicate unless the task has fewer samples than ranks.
* A class-balanced task (``class_labels``: a classification task's label per index) replaces that
  permutation by n draws whose classes are equally frequent (n/K each of its K classes, shuffled);
  each class fills its draws from fresh permutations of its own samples, so a rare class repeats
  within a pass (a batch can then hold a duplicate) and a common one is subsampled, a different
  subset each pass. The plan stays a function of ``(seed, epoch)``: resuming is unchanged.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .errors import DataError


def task_probabilities(task_sizes: Mapping[str, int], alpha: float) -> dict[str, float]:
    """``p_t = n_t^α / Σ n^α`` (α = 0 uniform, α = 1 proportional to size)."""
    if not task_sizes:
        raise DataError("no tasks to sample from (task_sizes is empty)")
    empty = [t for t, n in task_sizes.items() if n <= 0]
    if empty:
        raise DataError(f"empty dataset for task(s) {', '.join(empty)}; every task needs at least one sample")
    weights = np.array([float(n) ** alpha for n in task_sizes.values()])
    return dict(zip(task_sizes, (weights / weights.sum()).tolist()))


def _class_members(task: str, labels: Sequence[int], size: int | None) -> list[np.ndarray]:
    """The indices of each class present in ``labels`` (classes in increasing order)."""
    if size is None:
        raise DataError(f"class labels given for task {task!r}, which is not one of the sampled tasks")
    labels = np.asarray(labels)
    if labels.shape != (size,) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"task {task!r}: class-balanced sampling needs one integer class per sample ({size}); "
                        f"got {labels.shape[0] if labels.ndim else 'no'} label(s) of type {labels.dtype}")
    return [np.flatnonzero(labels == c) for c in np.unique(labels)]


class TaskSampler:
    """Iterates ``(task_id, indices)`` per step: the indices of one batch of one task for this rank.

    Call ``set_epoch(e)`` before each epoch (as with `DistributedSampler`), or just iterate again:
    a new iteration after a finished epoch starts the next one. ``state_dict()`` /
    ``load_state_dict()`` resume exactly mid-epoch: the state is the epoch and the number of
    steps already yielded (with a prefetching DataLoader, save the number of steps the training
    loop consumed instead: ``{"epoch": e, "step": n}``). ``class_labels`` names the tasks to draw
    class-balanced, with each index's class (read from the index, so nothing is decoded).
    """

    def __init__(self, task_sizes: Mapping[str, int], batch_size: int, alpha: float = 0.5, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False,
                 class_labels: Mapping[str, Sequence[int]] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for num_replicas={num_replicas}")
        self.task_sizes = dict(task_sizes)
        self.probabilities = task_probabilities(self.task_sizes, alpha)
        self.batch_size, self.alpha, self.seed = batch_size, alpha, seed
        self.num_replicas, self.rank, self.drop_last = num_replicas, rank, drop_last
        for task, n in self.task_sizes.items():
            if self._batches_per_pass(n) == 0:
                raise DataError(f"task {task!r} has {n} samples: not one full batch of {batch_size} per rank "
                                f"({num_replicas} ranks) with drop_last=True")
        self._class_members = {task: _class_members(task, labels, self.task_sizes.get(task))
                               for task, labels in (class_labels or {}).items()}
        self.epoch = 0
        self.step = 0

    def _shard_size(self, n: int) -> int:
        return n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)

    def _batches_per_pass(self, n: int) -> int:
        shard = self._shard_size(n)
        return shard // self.batch_size if self.drop_last else -(-shard // self.batch_size)

    def __len__(self) -> int:
        """Steps per epoch: batches for one pass over every task on this rank (the same on all ranks)."""
        return sum(self._batches_per_pass(n) for n in self.task_sizes.values())

    def steps_per_task(self) -> dict[str, int]:
        """How many of the epoch's steps each task gets: ``len(self) * p_t``, rounded exactly."""
        total = len(self)
        quotas = np.array(list(self.probabilities.values())) * total
        counts = np.floor(quotas).astype(int)
        remainders = quotas - counts
        # Largest remainders first; ties broken by task order so every rank agrees.
        for i in np.argsort(-remainders, kind="stable")[: total - counts.sum()]:
            counts[i] += 1
        return dict(zip(self.task_sizes, counts.tolist()))

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.step = int(epoch), 0

    def plan(self) -> list[tuple[str, list[int]]]:
        """The whole epoch for this rank: ``(task, indices)`` per step."""
        counts = self.steps_per_task()
        order = np.repeat(np.arange(len(counts)), list(counts.values()))
        self._rng("order").shuffle(order)
        tasks = list(counts)
        batches = {task: self._task_batches(task, counts[task]) for task in tasks}
        cursor = dict.fromkeys(tasks, 0)
        steps = []
        for i in order:
            task = tasks[i]
            steps.append((task, batches[task][cursor[task]]))
            cursor[task] += 1
        return steps

    def _task_batches(self, task: str, count: int) -> list[list[int]]:
        n = self.task_sizes[task]
        shard = self._shard_size(n)
        batches: list[list[int]] = []
        pass_index = 0
        while len(batches) < count:
            order = self._pass_order(task, pass_index)
            total = shard * self.num_replicas
            padded = np.resize(order, total)  # wraps around when padding, truncates with drop_last
            mine = padded[self.rank::self.num_replicas].tolist()
            step = self.batch_size
            last = len(mine) - len(mine) % step if self.drop_last else len(mine)
            batches.extend(mine[i:i + step] for i in range(0, last, step))
            pass_index += 1
        return batches[:count]

    def _pass_order(self, task: str, pass_index: int) -> np.ndarray:
        """The task's indices in one pass: a permutation, or class-balanced draws (module docstring)."""
        rng = self._rng("task", task, pass_index)
        n = self.task_sizes[task]
        members = self._class_members.get(task)
        if members is None:
            return rng.permutation(n)
        k = len(members)
        # n // k slots per class, the n % k left over to random classes, then the slots shuffled.
        slots = rng.permutation(np.concatenate([np.repeat(np.arange(k), n // k), rng.permutation(k)[:n % k]]))
        order = np.empty(n, dtype=np.int64)
        for c, indices in enumerate(members):
            where = np.flatnonzero(slots == c)
            draws = np.concatenate([rng.permutation(indices) for _ in range(-(-len(where) // len(indices)))])
            order[where] = draws[:len(where)]
        return order

    def _rng(self, *key: object) -> np.random.Generator:
        # A stable hash (not Python's salted hash()) so every process derives the same stream.
        words = [zlib.crc32(str(k).encode()) for k in key]
        return np.random.default_rng([self.seed, self.epoch, *words])

    def __iter__(self) -> Iterator[tuple[str, list[int]]]:
        if self.step >= len(self):  # the previous epoch was finished: go on with the next one
            self.set_epoch(self.epoch + 1)
        plan = self.plan()
        while self.step < len(plan):
            item = plan[self.step]
            self.step += 1
            yield item

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if "seed" in state and state["seed"] != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this sampler has seed {self.seed}")
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
