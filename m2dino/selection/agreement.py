"""EGAD's second stage: agreement-diversity of candidate images against the labelled set.

For a candidate u and labelled images l₁…l_m (feature vectors: gray pixels or embeddings)::

    cos(u)  = mean_j cosine(u, l_j)
    MI(u)   = mean_j I(u; l_j)      I = Σ p(x,y)·log(p(x,y) / (p(x)·p(y)))  from a joint histogram
    AD(u)   = 2 − ½·minmax(cos)(u) − ½·minmax(MI)(u)

min-max over the candidates. An image that looks like the labelled ones (high similarity, high
shared information) scores near 1, an unlike one near 2; the top scores are picked.

The mutual information treats the two vectors' values as paired samples of two random
variables and estimates their joint distribution with a 20×20 histogram, each axis spanning its
own vector's range, in nats, as the SSL-EGAD reference code does (``np.histogram2d(a, b, 20)``).
"""

from __future__ import annotations

import numpy as np

MI_BINS = 20


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of ``a`` (n×d) with every row of ``b`` (m×d): n×m. A zero
    vector has similarity 0 with everything."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    return (a / np.where(na == 0, 1, na)) @ (b / np.where(nb == 0, 1, nb)).T


def histogram_bins(values: np.ndarray, bins: int = MI_BINS) -> np.ndarray:
    """The bin (0 … bins−1) of each value on ``bins`` equal bins spanning the values' own range, as
    ``np.histogram2d`` bins each axis (right-open bins, the last one closed)."""
    values = np.ravel(values).astype(np.float64)
    low, high = values.min(), values.max()
    if low == high:  # one value: one bin (which one does not change any mutual information)
        return np.zeros(values.shape, dtype=np.int64)
    edges = np.linspace(low, high, bins + 1)
    return np.minimum(np.searchsorted(edges, values, side="right") - 1, bins - 1)


def binned_mutual_information(x_bins: np.ndarray, y_bins: np.ndarray, bins: int = MI_BINS) -> float:
    """I(X; Y) in nats from paired bin indices (`histogram_bins`): binning each vector once makes
    the many pairs of agreement-diversity cheap."""
    joint = np.bincount(x_bins * bins + y_bins, minlength=bins * bins).reshape(bins, bins)
    pxy = joint / joint.sum()
    px, py = pxy.sum(axis=1), pxy.sum(axis=0)
    nonzero = pxy > 0
    return float(np.sum(pxy[nonzero] * np.log(pxy[nonzero] / np.outer(px, py)[nonzero])))


def mutual_information(x: np.ndarray, y: np.ndarray, bins: int = MI_BINS) -> float:
    """I(X; Y) in nats from the joint histogram of the paired values of ``x`` and ``y``."""
    return binned_mutual_information(histogram_bins(x, bins), histogram_bins(y, bins), bins)


def min_max(values: np.ndarray) -> np.ndarray:
    """Scaled to [0, 1]; all-equal values map to 0 (the reference code divides by zero there)."""
    values = np.asarray(values, dtype=np.float64)
    span = values.max() - values.min() if values.size else 0.0
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def agreement_diversity(candidates: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """AD score of each candidate row against the labelled rows (higher: more unlike them)."""
    if len(labelled) == 0:
        raise ValueError("agreement-diversity needs at least one labelled image to compare against")
    cosine = cosine_similarity(candidates, labelled).mean(axis=1)
    labelled_bins = [histogram_bins(row) for row in labelled]
    mi = np.array([np.mean([binned_mutual_information(bins, other) for other in labelled_bins])
                   for bins in map(histogram_bins, candidates)])
    return 2 - 0.5 * min_max(cosine) - 0.5 * min_max(mi)


__all__ = ["MI_BINS", "agreement_diversity", "binned_mutual_information", "cosine_similarity", "histogram_bins",
           "min_max", "mutual_information"]
