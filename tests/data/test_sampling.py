from collections import Counter

import numpy as np
import pytest

from m2dino.data import DataError
from m2dino.data.sampling import TaskSampler, task_probabilities

SIZES = {"a": 100, "b": 25, "c": 7}


def test_probabilities_follow_n_to_the_alpha():
    assert task_probabilities(SIZES, 0.0) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert task_probabilities(SIZES, 1.0) == pytest.approx({"a": 100 / 132, "b": 25 / 132, "c": 7 / 132})
    half = task_probabilities(SIZES, 0.5)
    assert half["a"] / half["b"] == pytest.approx(2.0)
    with pytest.raises(DataError, match="empty dataset for task"):
        task_probabilities({"a": 3, "b": 0}, 0.5)
    with pytest.raises(DataError, match="no tasks"):
        task_probabilities({}, 0.5)


def test_epoch_length_and_exact_task_counts():
    sampler = TaskSampler(SIZES, batch_size=4, alpha=1.0)
    assert len(sampler) == 25 + 7 + 2  # ceil(n / batch) per task
    assert sampler.steps_per_task() == {"a": 26, "b": 6, "c": 2}
    steps = list(sampler)
    assert len(steps) == 34 and Counter(t for t, _ in steps) == Counter(sampler.steps_per_task())
    uniform = TaskSampler(SIZES, batch_size=4, alpha=0.0)
    assert sorted(uniform.steps_per_task().values()) == [11, 11, 12]


def test_one_epoch_at_alpha_one_sees_every_index_of_a_task_in_its_batches():
    sampler = TaskSampler({"a": 10}, batch_size=3, alpha=1.0)
    batches = [indices for _, indices in sampler]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert sorted(sum(batches, [])) == list(range(10))
    dropped = [indices for _, indices in TaskSampler({"a": 10}, batch_size=3, drop_last=True)]
    assert [len(b) for b in dropped] == [3, 3, 3] and len(set(sum(dropped, []))) == 9


def test_small_tasks_are_revisited_with_fresh_permutations_and_no_duplicates_within_a_batch():
    sampler = TaskSampler({"big": 400, "small": 5}, batch_size=4, alpha=0.0)
    small = [indices for task, indices in sampler if task == "small"]
    assert len(small) == len(sampler) // 2
    for indices in small:
        assert len(set(indices)) == len(indices) and set(indices) <= set(range(5))


def test_all_ranks_draw_the_same_task_at_each_step():
    sizes = {"a": 99, "b": 24, "c": 6}  # multiples of the rank count: no wrap-around padding
    ranks = [TaskSampler(sizes, batch_size=4, alpha=0.5, seed=3, num_replicas=3, rank=r) for r in range(3)]
    plans = [r.plan() for r in ranks]
    assert len({len(plan) for plan in plans}) == 1
    for step in zip(*plans):
        assert len({task for task, _ in step}) == 1
        assert not set(step[0][1]) & set(step[1][1])  # different samples on different ranks


def test_ranks_get_disjoint_shards_that_cover_the_task():
    shards = [sum((ix for _, ix in TaskSampler({"a": 100}, batch_size=4, num_replicas=3, rank=r)), [])
              for r in range(3)]
    assert [len(s) for s in shards] == [34, 34, 34]  # padded by wrapping around, as DistributedSampler
    assert set().union(*shards) == set(range(100))
    assert sum(len(s) for s in shards) - 100 == 2
    dropped = [sum((ix for _, ix in TaskSampler({"a": 100}, batch_size=1, num_replicas=3, rank=r, drop_last=True)), [])
               for r in range(3)]
    assert [len(s) for s in dropped] == [33, 33, 33] and len(set().union(*dropped)) == 99


def test_epochs_differ_and_are_reproducible():
    sampler = TaskSampler(SIZES, batch_size=4, seed=1)
    first, second = list(sampler), list(sampler)  # iterating again starts the next epoch
    assert sampler.epoch == 1 and first != second
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(TaskSampler(SIZES, batch_size=4, seed=2)) != first


def test_resume_mid_epoch_continues_exactly():
    sampler = TaskSampler(SIZES, batch_size=4, seed=5)
    sampler.set_epoch(3)
    iterator = iter(sampler)
    head = [next(iterator) for _ in range(10)]
    state = sampler.state_dict()
    assert state == {"epoch": 3, "step": 10, "seed": 5}
    rest = list(iterator)
    resumed = TaskSampler(SIZES, batch_size=4, seed=5)
    resumed.load_state_dict(state)
    assert list(resumed) == rest
    full = TaskSampler(SIZES, batch_size=4, seed=5)
    full.set_epoch(3)
    assert list(full) == head + rest
    with pytest.raises(ValueError, match="seed 5, this sampler has seed 6"):
        TaskSampler(SIZES, batch_size=4, seed=6).load_state_dict(state)


def test_drop_last_with_too_few_samples_is_an_error():
    with pytest.raises(DataError, match="task 'c' has 7 samples: not one full batch of 4 per rank"):
        TaskSampler(SIZES, batch_size=4, num_replicas=2, drop_last=True)


def test_empirical_task_frequencies_match_the_probabilities_over_epochs():
    sampler = TaskSampler(SIZES, batch_size=2, alpha=0.5)
    counts = Counter(task for _ in range(5) for task, _ in sampler)
    total = sum(counts.values())
    for task, p in task_probabilities(SIZES, 0.5).items():
        assert counts[task] / total == pytest.approx(p, abs=0.02)
    assert np.isclose(sum(task_probabilities(SIZES, 0.5).values()), 1.0)
