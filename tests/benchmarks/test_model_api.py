"""The adapter the benchmarks call instead of private model methods computes what the model computes."""

import torch

from speed_parts.model_api import forward_features, forward_features_all, forward_head, routing, select_rows
from speed_parts.models import pick_mixed_tasks
from tests.models.helpers import FOUR_TYPES, assert_outputs_equal, tiny_model


def setup_module() -> None:
    torch.set_num_threads(1)


def test_all_tasks_at_once_equals_one_task_at_a_time():
    model = tiny_model(moe_blocks=(2, 3))
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        everything = forward_features_all(model, x, FOUR_TYPES)
        outputs = model.forward_all(x, FOUR_TYPES)
        for i, task in enumerate(FOUR_TYPES):
            one = forward_features(model, x, task)
            row = select_rows(everything, torch.tensor([i]))
            torch.testing.assert_close(row.tokens, one.tokens, atol=1e-5, rtol=0)
            # a head that reads no levels (classification, scalar) gets none on its own
            expected = set(model.feature_blocks) if model.heads[task].uses_levels else set()
            assert one.intermediates.keys() == expected and row.intermediates.keys() == set(model.feature_blocks)
            for block in expected:
                torch.testing.assert_close(row.intermediates[block], one.intermediates[block], atol=1e-5, rtol=0)
            assert_outputs_equal(forward_head(model, task, row, (32, 48)), outputs[task])
            assert_outputs_equal(outputs[task], model(x, task=task))


def test_routing_rows_follow_the_tasks():
    model = tiny_model()
    tasks = ["IUGC", "fetal_head", "IUGC"]
    r = routing(model, tasks)
    assert r.task_index.tolist() == [model.task_ids.index(t) for t in tasks]
    assert not r.single_task and routing(model, ["IUGC"] * 2).single_task


def test_mixed_tasks_use_the_most_distinct_experts():
    model = tiny_model(moe_blocks=(2, 3), num_experts=4, top_k=1)
    tasks, experts_per_block = pick_mixed_tasks(model, 2, (2, 3))
    table = model.routing_table()
    assert len(set(tasks)) == 2

    def distinct(chosen) -> float:
        return sum(len({e for t in chosen for e, _ in table[t][b]}) for b in (2, 3)) / 2
    assert experts_per_block == distinct(tasks)
    # greedy: the second task adds as many new experts as any other would
    assert experts_per_block == max(distinct([tasks[0], t]) for t in FOUR_TYPES if t != tasks[0])
