"""The strategies on hand-made measurements: what each picks, and determinism for a seed."""

import numpy as np
import pytest

from m2dino.cli.select_command import STRATEGY_NAMES
from m2dino.selection.strategies import STRATEGIES, PoolMeasures, get_strategy


def rng(seed=0):
    return np.random.default_rng(seed)


def test_the_cli_offers_exactly_the_library_strategies():
    assert STRATEGY_NAMES == tuple(STRATEGIES)


def test_random_is_deterministic_for_a_seed_and_changes_with_it():
    measures = PoolMeasures(50)
    first = get_strategy("random").pick(measures, 10, rng(3))
    again = get_strategy("random").pick(measures, 10, rng(3))
    other = get_strategy("random").pick(measures, 10, rng(4))
    assert first[0].tolist() == again[0].tolist() and first[1].tolist() == again[1].tolist()
    assert first[0].tolist() != other[0].tolist()
    assert len(set(first[0].tolist())) == 10 and list(first[1]) == sorted(first[1], reverse=True)


def test_entropy_picks_the_most_uncertain_ties_to_the_lower_index():
    measures = PoolMeasures(5, entropy=np.array([0.1, 0.9, 0.5, 0.9, 0.0]))
    picked, scores = get_strategy("entropy").pick(measures, 3, rng())
    assert picked.tolist() == [1, 3, 2] and scores.tolist() == [0.9, 0.9, 0.5]


def test_egad_picks_the_least_alike_among_the_uncertain_third():
    # 6 candidates: the uncertain third is {4, 5}; 0 is the most unlike the labelled image but certain
    features = np.array([[1.0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0]])
    measures = PoolMeasures(6, entropy=np.array([0.0, 0.1, 0.2, 0.3, 0.8, 0.9]), features=features,
                            labelled_features=np.array([[0.0, 0, 1, 1]]))
    picked, scores = get_strategy("egad").pick(measures, 1, rng())
    assert picked.tolist() == [5]
    # 4 is the labelled image (cos 1), 5 its complement (cos 0); both share ln 2 of information with
    # it, so the MI term is constant (normalised to 0): 5 scores 2 − ½·0 − ½·0, 4 would score 1.5
    assert scores.tolist() == pytest.approx([2.0])


def test_egad_widens_the_uncertain_subset_to_the_budget():
    measures = PoolMeasures(6, entropy=np.arange(6.0), features=np.eye(6),
                            labelled_features=np.ones((1, 6)))
    picked, _ = get_strategy("egad").pick(measures, 4, rng())
    assert sorted(picked.tolist()) == [2, 3, 4, 5]  # the budget (4) exceeds a third (2)


def test_coreset_starts_from_the_labelled_images_or_a_seeded_first_pick():
    line = np.array([[0.0], [1.0], [5.0]])
    picked, _ = get_strategy("coreset").pick(PoolMeasures(3, features=line, labelled_features=np.array([[4.0]])),
                                             2, rng())
    assert picked.tolist() == [0, 1]  # 0 is 4 from the labelled 4; then 1 (1 from 0) beats 5 (1 from 4): tie, lower
    firsts = {get_strategy("coreset").pick(PoolMeasures(3, features=line, labelled_features=np.zeros((0, 1))),
                                           1, rng(seed))[0][0] for seed in range(20)}
    assert firsts == {0, 1, 2}


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown selection strategy 'badge'; expected one of: random, entropy, "
                                         "egad, coreset"):
        get_strategy("badge")
