import copy
import json

import numpy as np
import pytest
import torch

from m2dino import M2DINO, M2DINOConfig
from m2dino.training import TrainConfig, Trainer
from m2dino.training.task_affinity import (
    AffinityTracker,
    ProbeBatches,
    _partitions,
    best_grouping,
    grouping_score,
    lookahead_affinity,
    recommended_groups,
    task_losses,
)

from .fake_data import fake_data

TASKS = ["fetal_head", "fetal_plane_cls", "thyroid_nodule_det"]


def dense_model(seed=0):
    torch.manual_seed(seed)
    return M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, decoder_features=8, image_size=32))


def probes(model, seed=0):
    train, _ = fake_data(TASKS)
    return ProbeBatches(train, model.config, batch_size=4, seed=seed)


def test_partitions_are_all_distinct_and_as_many_as_stirling_numbers():
    for n, k, stirling in [(4, 2, 7), (5, 3, 25), (10, 7, 5880)]:
        partitions = list(_partitions(list(range(n)), k))
        assert len(partitions) == stirling
        canonical = {tuple(sorted(tuple(sorted(g)) for g in p)) for p in partitions}
        assert len(canonical) == stirling
        assert all(len(p) == k and sorted(i for g in p for i in g) == list(range(n)) for p in partitions)


def test_grouping_score_is_the_mean_affinity_onto_each_task_from_its_group():
    z = np.array([[0.0, 0.3, -0.2, 0.1],
                  [0.1, 0.0, 0.0, 0.0],
                  [-0.1, 0.05, 0.0, 0.2],
                  [0.0, -0.3, 0.15, 0.0]])
    # {0,1}: onto 0 from 1 = 0.1, onto 1 from 0 = 0.3; {2,3}: 0.2 + 0.15
    assert grouping_score(z, [[0, 1], [2, 3]]) == pytest.approx(0.75)
    # {0,1,2}: onto 0 mean(0.1, -0.1) = 0, onto 1 mean(0.3, 0.05), onto 2 mean(-0.2, 0); {3} alone: 0
    assert grouping_score(z, [[0, 1, 2], [3]]) == pytest.approx(0.175 - 0.1)
    names = ["a", "b", "c", "d"]
    assert best_grouping(z, names, 2) == [["a", "b"], ["c", "d"]]
    assert best_grouping(z, names, 3) == [["a", "b"], ["c"], ["d"]]  # 0.4 beats {c, d}'s 0.35
    assert best_grouping(z, names, 4) == [["a"], ["b"], ["c"], ["d"]]


def test_grouping_rejects_a_matrix_of_the_wrong_size_and_impossible_group_counts():
    with pytest.raises(ValueError, match="shape"):
        best_grouping(np.zeros((3, 3)), ["a", "b"], 1)
    with pytest.raises(ValueError, match="num_groups"):
        best_grouping(np.zeros((2, 2)), ["a", "b"], 3)


def test_lookahead_matches_a_step_taken_by_hand_on_a_copy_and_restores_the_weights():
    model = dense_model()
    batches = probes(model).draw(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr = 0.05
    z = lookahead_affinity(model, batches, lr)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    base = {t: float(v.detach()) for t, v in task_losses(model, batches).items()}
    for i, source in enumerate(TASKS):
        copy_ = copy.deepcopy(model)
        loss = task_losses(copy_, {source: batches[source]})[source]
        params = list(copy_.backbone.parameters())
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p -= lr * g
            after = task_losses(copy_, batches)
        for j, target in enumerate(TASKS):
            assert z[i, j] == pytest.approx(1 - float(after[target]) / base[target], abs=1e-5)
    assert np.all(np.diag(z) > 0)  # a small step on a task's own gradient lowers its own loss


def test_tracker_measures_every_k_steps_of_a_run_and_reports_groupings(tmp_path):
    train, val = fake_data(TASKS)
    tracker = AffinityTracker(train, every=3, batch_size=4)
    config = TrainConfig(output_dir=str(tmp_path), steps=7, batch_size=4, eval_every=1000, warmup_steps=1)
    Trainer(dense_model(), train, val, config, step_callback=tracker, progress=False).train()
    assert [m["step"] for m in tracker.measurements] == [3, 6]
    assert len({m["lr"] for m in tracker.measurements}) == 1  # the base rate, whatever the schedule did
    assert tracker.measurements[0]["lr"] > 0
    mean = tracker.mean()
    assert mean.shape == (3, 3) and np.isfinite(mean).all()
    np.testing.assert_allclose(mean, np.mean([m["affinity"] for m in tracker.measurements], axis=0))
    report = tracker.report({"fetal": ["fetal_head", "fetal_plane_cls"], "thyroid_neck": ["thyroid_nodule_det"]})
    assert report["num_groups"] == 2 and set(report["recommended"]) == {"1", "2", "3"}
    groups = recommended_groups(json.loads(json.dumps(report)))  # as read back from task_affinity.json
    assert len(groups) == 2 and sorted(t for g in groups.values() for t in g) == sorted(TASKS)
    assert list(groups.values())[0] == report["recommended"]["2"]["groups"][0]
    with pytest.raises(ValueError, match="4 groups asked for 3 tasks"):
        recommended_groups(report, 4)


def test_a_resumed_run_logs_and_measures_what_an_uninterrupted_one_does(tmp_path):
    train, val = fake_data(TASKS)

    def run(folder, tracker, stop_at=None, resume=None):
        def callback(trainer, step):
            tracker(trainer, step)
            if step == stop_at:
                trainer.request_stop()

        config = TrainConfig(output_dir=str(tmp_path / folder), steps=7, batch_size=4, eval_every=1000,
                             warmup_steps=1)
        Trainer(dense_model(), train, val, config, step_callback=callback, resume=resume, progress=False).train()

    straight = AffinityTracker(train, every=2, batch_size=4, log=tmp_path / "a.jsonl")
    run("a", straight)
    first = AffinityTracker(train, every=2, batch_size=4, log=tmp_path / "b.jsonl")
    run("b", first, stop_at=3)
    assert [m["step"] for m in first.measurements] == [2]
    resumed = AffinityTracker(train, every=2, batch_size=4, log=tmp_path / "b.jsonl", resume=True)
    run("b", resumed, resume="latest")
    assert [m["step"] for m in resumed.measurements] == [2, 4, 6] == [m["step"] for m in straight.measurements]
    np.testing.assert_allclose(resumed.mean(), straight.mean(), rtol=1e-5, atol=1e-9)
    logged = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert logged == resumed.measurements
    fresh = AffinityTracker(train, every=2, batch_size=4, log=tmp_path / "b.jsonl")  # not resuming: starts empty
    run("c", fresh)
    assert [json.loads(line)["step"] for line in (tmp_path / "b.jsonl").read_text().splitlines()] == [2, 4, 6]


def test_probe_batches_repeat_for_the_same_index_and_differ_between_indices():
    model = dense_model()
    a, b = probes(model), probes(model)
    torch.testing.assert_close(a.draw(0)["fetal_head"]["pixel_values"], b.draw(0)["fetal_head"]["pixel_values"])
    assert not torch.equal(a.draw(0)["fetal_head"]["pixel_values"], a.draw(1)["fetal_head"]["pixel_values"])


def test_an_empty_tracker_says_why_it_has_no_matrix():
    train, _ = fake_data(TASKS)
    with pytest.raises(ValueError, match="shorter than one measurement interval"):
        AffinityTracker(train, every=10).mean()
    with pytest.raises(ValueError, match="at least 2 tasks"):
        AffinityTracker({"fetal_head": train["fetal_head"]}, every=10)
