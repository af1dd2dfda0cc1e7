"""k-center greedy on points on a line."""

import numpy as np
import pytest

from m2dino.selection.coreset import k_center_greedy

LINE = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])


def test_farthest_from_the_labelled_set_and_earlier_picks_first():
    picked, scores = k_center_greedy(LINE, labelled=np.array([[0.0]]), budget=3)
    # 10 is 10 from the labelled 0; then 3 (3 from 0, 7 from 10); then 1 and 2 are both 1 from a
    # centre: the tie goes to the lower index
    assert picked.tolist() == [4, 3, 1]
    assert scores.tolist() == [10.0, 3.0, 1.0]


def test_without_labelled_images_the_first_pick_is_given():
    picked, scores = k_center_greedy(LINE, labelled=np.zeros((0, 1)), budget=2, first=0)
    assert picked.tolist() == [0, 4]
    assert np.isinf(scores[0]) and scores[1] == 10.0


def test_never_picks_twice_even_when_everything_is_covered():
    picked, _ = k_center_greedy(np.zeros((3, 2)), labelled=np.zeros((1, 2)), budget=3)
    assert sorted(picked.tolist()) == [0, 1, 2]


def test_budget_out_of_range():
    with pytest.raises(ValueError, match="budget 6 for 5 candidates"):
        k_center_greedy(LINE, np.zeros((0, 1)), 6)
