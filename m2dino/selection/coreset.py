"""k-center greedy (Sener & Savarese, "Active learning for CNNs: a core-set approach", 2018)."""

from __future__ import annotations

import numpy as np


def k_center_greedy(candidates: np.ndarray, labelled: np.ndarray, budget: int, first: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``budget`` rows of ``candidates`` (n×d), each time the one farthest (Euclidean) from its
    nearest centre, the centres being the labelled rows and the rows already picked.

    Returns the picked indices in pick order and each one's distance to its nearest centre when it
    was picked. With no labelled rows the first pick is ``first`` (score ``inf``: nothing to be far
    from). Ties go to the lower index, so the result is deterministic.
    """
    candidates = np.asarray(candidates, dtype=np.float64)
    if not 0 < budget <= len(candidates):
        raise ValueError(f"budget {budget} for {len(candidates)} candidates; expected 1 to {len(candidates)}")
    nearest = np.full(len(candidates), np.inf)
    for centre in np.asarray(labelled, dtype=np.float64).reshape(-1, candidates.shape[1]):
        nearest = np.minimum(nearest, np.linalg.norm(candidates - centre, axis=1))
    picked, scores = [], []
    for step in range(budget):
        index = first if step == 0 and np.isinf(nearest).all() else int(np.argmax(nearest))
        picked.append(index)
        scores.append(nearest[index])
        nearest = np.minimum(nearest, np.linalg.norm(candidates - candidates[index], axis=1))
        nearest[index] = -1.0  # never picked twice (distances are >= 0)
    return np.array(picked, dtype=np.int64), np.array(scores)


__all__ = ["k_center_greedy"]
