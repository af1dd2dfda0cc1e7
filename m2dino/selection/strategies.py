"""The selection strategies, on precomputed numbers (no model, no files): each takes what the
pool pass measured and returns the picked candidate indices, best first, with their scores.

- random: a seeded permutation; the score is the uniform draw that ordered it.
- entropy: the highest predictive entropy.
- egad: SSL-EGAD's two stages (Wang et al., 2026, "Entropy-Guided Agreement-Diversity",
  arXiv:2601.17460): the most uncertain third of the candidates by predictive entropy (at least
  ``budget`` of them), then the highest agreement-diversity against the labelled set
  (`m2dino.selection.agreement`).
- coreset: k-center greedy on the features, the labelled images being the initial centres.

Where the reference implementation (github.com/13204942/Semi-supervised-EGAD,
src/code/utils/query_strategies/) differs from the paper's definitions, we follow the definitions:

1. Entropy. The paper ranks by predictive entropy H = −Σ_c p_c·log p_c. ``entropy_sampling.py``
   applies ``softmax`` and then ``log_softmax`` to the probabilities, so it computes
   Σ p·log softmax(p), not Σ p·log p; ``hybrid_sampler.py`` (EGAD) has the softmax commented out
   and computes Σ z·log softmax(z) from the network's raw outputs z. Neither is the entropy, and
   both can rank images differently from it. Two 2-pixel images with foreground probabilities
   (0.668, 0.957) and (0.925, 0.748) have entropies 0.812 < 0.832 nats, but the first scores
   −1.027 < −1.021 in ``entropy_sampling.py`` (lower = picked first): the order flips. The second
   is not a function of the probabilities at all: logits (0, 0) and (5, 5) give the same uniform
   prediction and score 0 and −6.93. We use H per pixel from the logits (`uncertainty`).
2. Pixels are summed in the reference and averaged here: the same ranking for images of one size
   (the model's input size), and a number that does not grow with resolution.
3. The uncertain subset is ``int(N/3)`` images in the reference, which returns fewer than the
   budget when the budget exceeds N/3 (and nothing for N < 3); here it is
   ``max(budget, ceil(N/3))``.
4. min-max normalisation of all-equal scores divides by zero (NaN) in the reference; here they
   become 0, so the other term decides.
5. Agreement-diversity itself (the mean cosine similarity and the mean 20-bin histogram mutual
   information over the labelled images, each min-max normalised over the candidates, then
   2 − ½·cos − ½·MI, top scores picked) matches the reference. The reference computes it on the
   full-size network inputs (448×448); here on the chosen features: 64×64 gray pixels by default,
   or the backbone's pooled embedding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .agreement import agreement_diversity
from .coreset import k_center_greedy


@dataclass(frozen=True)
class PoolMeasures:
    """What the pool pass measured for the candidates (rows in candidate order)."""

    count: int
    entropy: np.ndarray | None = None            # (n,)
    features: np.ndarray | None = None           # n×d
    labelled_features: np.ndarray | None = None  # m×d, the labelled images' features


Picks = tuple[np.ndarray, np.ndarray]  # candidate indices best first, their scores


def top(scores: np.ndarray, budget: int) -> np.ndarray:
    """Indices of the ``budget`` highest scores; ties go to the lower index."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:budget]


def pick_random(measures: PoolMeasures, budget: int, rng: np.random.Generator) -> Picks:
    draws = rng.random(measures.count)
    order = top(draws, budget)
    return order, draws[order]


def pick_entropy(measures: PoolMeasures, budget: int, rng: np.random.Generator) -> Picks:
    order = top(measures.entropy, budget)
    return order, measures.entropy[order]


def pick_egad(measures: PoolMeasures, budget: int, rng: np.random.Generator) -> Picks:
    uncertain = top(measures.entropy, max(budget, math.ceil(measures.count / 3)))
    scores = agreement_diversity(measures.features[uncertain], measures.labelled_features)
    order = top(scores, budget)
    return uncertain[order], scores[order]


def pick_coreset(measures: PoolMeasures, budget: int, rng: np.random.Generator) -> Picks:
    labelled = measures.labelled_features
    first = int(rng.integers(measures.count))  # used only when nothing is labelled yet
    return k_center_greedy(measures.features, labelled if labelled is not None else np.zeros((0, 1)),
                           budget, first)


@dataclass(frozen=True)
class Strategy:
    name: str
    pick: Callable[[PoolMeasures, int, np.random.Generator], Picks]
    needs_entropy: bool = False
    needs_features: bool = False
    needs_labelled: bool = False


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (
    Strategy("random", pick_random),
    Strategy("entropy", pick_entropy, needs_entropy=True),
    Strategy("egad", pick_egad, needs_entropy=True, needs_features=True, needs_labelled=True),
    Strategy("coreset", pick_coreset, needs_features=True),
)}


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ValueError(f"unknown selection strategy {name!r}; expected one of: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


__all__ = ["PoolMeasures", "STRATEGIES", "Strategy", "get_strategy", "top"]
