"""Class-balanced sampling inside a classification task: classes drawn equally often, every sample seen
over epochs, deterministic for a seed, resumable mid-epoch, other tasks' batches untouched."""

from collections import Counter
from itertools import islice

import numpy as np
import pytest

from m2dino.data import DataError
from m2dino.data.sampling import TaskSampler

# 90 / 8 / 2: a task a model can fit by always answering class 0
LABELS = [0] * 90 + [1] * 8 + [2] * 2
SIZES = {"cls": 100, "seg": 40}


def sampler(**kw) -> TaskSampler:
    return TaskSampler(**{"task_sizes": SIZES, "batch_size": 8, "alpha": 1.0, "seed": 5,
                          "class_labels": {"cls": LABELS}, **kw})


def drawn_classes(steps) -> Counter:
    return Counter(LABELS[i] for task, indices in steps if task == "cls" for i in indices)


def test_each_epoch_draws_the_classes_equally_often():
    s = sampler()
    for _ in range(5):
        counts = drawn_classes(list(s))  # α = 1: one pass of 100 draws per epoch
        assert sum(counts.values()) == 100 and sorted(counts.values()) == [33, 33, 34]
    plain = TaskSampler(SIZES, batch_size=8, alpha=1.0, seed=5)
    assert drawn_classes(list(plain)) == Counter({0: 90, 1: 8, 2: 2})


def test_batches_are_balanced_on_average_and_every_sample_is_seen_over_epochs():
    s = sampler(alpha=0.5)
    steps = [step for _ in range(30) for step in s]
    counts = drawn_classes(steps)
    total = sum(counts.values())
    assert all(abs(n / total - 1 / 3) < 0.02 for n in counts.values())
    seen = {i for task, indices in steps if task == "cls" for i in indices}
    assert seen == set(range(100))  # the majority is subsampled, a different subset each pass


def test_the_plan_is_a_function_of_the_seed_and_epoch():
    assert sampler().plan() == sampler().plan()
    assert sampler().plan() != sampler(seed=6).plan()
    second = sampler()
    second.set_epoch(1)
    assert second.plan() != sampler().plan()


def test_other_tasks_and_the_task_order_are_unchanged():
    balanced, plain = sampler().plan(), TaskSampler(SIZES, batch_size=8, alpha=1.0, seed=5).plan()
    assert [t for t, _ in balanced] == [t for t, _ in plain]
    assert [b for t, b in balanced if t == "seg"] == [b for t, b in plain if t == "seg"]
    assert [b for t, b in balanced if t == "cls"] != [b for t, b in plain if t == "cls"]


def test_resume_mid_epoch_continues_exactly():
    straight = sampler()
    expected = list(straight) + list(straight)  # epochs 0 and 1
    first = sampler()
    head = list(islice(iter(first), 10))
    resumed = sampler()
    resumed.load_state_dict(first.state_dict())
    assert head + list(resumed) + list(resumed) == expected


def test_ranks_share_one_balanced_pass_between_them():
    ranks = [sampler(num_replicas=2, rank=r) for r in range(2)]
    plans = [r.plan() for r in ranks]
    cls_batches = [[i for t, b in plan if t == "cls" for i in b] for plan in plans]
    assert len(cls_batches[0]) == len(cls_batches[1]) == 50
    both = Counter(LABELS[i] for batch in cls_batches for i in batch)
    assert sorted(both.values()) == [33, 33, 34]


@pytest.mark.parametrize("labels, message", [
    ({"cls": LABELS[:99]}, r"task 'cls': class-balanced sampling needs one integer class per sample \(100\); "
                           r"got 99 label\(s\) of type int64"),
    ({"cls": [0.5] * 100}, r"got 100 label\(s\) of type float64"),
    ({"other": [0, 1]}, "class labels given for task 'other', which is not one of the sampled tasks"),
])
def test_bad_class_labels_are_refused_naming_the_task(labels, message):
    with pytest.raises(DataError, match=message):
        TaskSampler(SIZES, batch_size=8, class_labels=labels)


def test_a_single_class_task_still_sees_each_sample_once_per_pass():
    s = TaskSampler({"cls": 10}, batch_size=3, alpha=1.0, class_labels={"cls": np.zeros(10, int)})
    assert sorted(i for _, b in s for i in b) == list(range(10))
