"""Classification scores as the challenge computes them (scikit-learn), with a defined AUC when a
class is absent from the ground truth."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score, matthews_corrcoef, roc_auc_score


def one_vs_rest_auc(y_true: np.ndarray, scores: np.ndarray, num_classes: int) -> tuple[float, list[int]]:
    """The challenge's AUC and the classes it had to leave out.

    Binary (``num_classes == 2``): ROC AUC of the class-1 score. Multi-class: the macro mean of
    each class's one-vs-rest ROC AUC of its own score column, which equals scikit-learn's
    ``roc_auc_score(multi_class="ovr", average="macro")`` when every class occurs. A class's
    one-vs-rest AUC is undefined when the ground truth holds none or only that class; such classes
    are left out of the mean (and returned) instead of failing the whole task, and when no class is
    left the AUC is NaN. (The challenge's script catches scikit-learn's error and writes 0.0, a
    number that reads as "worse than chance": that value is `challenge_auc`.) Scores are
    used as given: one-vs-rest AUC only ranks a column, so rows need not sum to 1.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(y_true), num_classes):
        raise ValueError(f"expected scores of shape ({len(y_true)}, {num_classes}), got {scores.shape}")
    classes = [1] if num_classes == 2 else list(range(num_classes))
    aucs, skipped = [], []
    for c in classes:
        positives = y_true == c
        if positives.all() or not positives.any():
            skipped.append(c)
            continue
        aucs.append(roc_auc_score(positives, scores[:, c]))
    return (float(np.mean(aucs)) if aucs else float("nan")), skipped


def label_scores(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, F1 macro / weighted (zero_division=0), MCC and per-class F1.

    F1 macro averages over the labels present in ``y_true`` or ``y_pred`` (scikit-learn's default,
    as in the challenge). Per-class F1 is given for every class 0..C-1 by its own index (the
    challenge's script indexes scikit-learn's present-labels array by class, which shifts classes
    when one is absent; here ``class_c`` is always class c).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"expected two equal-length non-empty label vectors, got {y_true.shape} and {y_pred.shape}")
    with warnings.catch_warnings():
        # MCC of a single-class problem is 0 by definition; scikit-learn also warns about it.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        per_class = f1_score(y_true, y_pred, labels=list(range(num_classes)), average=None, zero_division=0)
        return {
            "Accuracy": float(np.mean(y_true == y_pred)),
            "F1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "F1_weighted": float(f1_score(y_true, y_pred, average="weighted", zero_division=0)),
            "MCC": float(matthews_corrcoef(y_true, y_pred)),
            "per_class": {f"class_{c}": {"F1": float(per_class[c])} for c in range(num_classes)},
        }


def challenge_auc(y_true: np.ndarray, probs: list[np.ndarray | None], num_classes: int) -> tuple[float, str | None]:
    """The AUC exactly as the challenge's evaluator computes it, and why it fell back to 0.0 (or None).

    Binary: ``roc_auc_score(y_true, probs[:, 1])``; multi-class: ``roc_auc_score(y_true, probs,
    average="macro", multi_class="ovr")``. It is 0.0 whenever an image lacks probabilities or
    scikit-learn raises (a class absent from the ground truth, rows not summing to 1, ...): a number
    that reads as "worse than chance", which is why `one_vs_rest_auc` is reported beside it. Where
    scikit-learn returns NaN instead of raising (a binary task with one class present, in current
    releases), so does this, as the challenge's script then does.
    """
    if any(p is None for p in probs):
        return 0.0, "some predictions have no predicted_probs"
    try:
        scores = np.asarray([np.asarray(p, dtype=np.float64) for p in probs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if num_classes == 2:
                return float(roc_auc_score(y_true, scores[:, 1])), None
            return float(roc_auc_score(y_true, scores, average="macro", multi_class="ovr")), None
    except (ValueError, IndexError) as err:
        return 0.0, str(err).splitlines()[0]


def challenge_per_class_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Per-class F1 as the challenge writes it: scikit-learn's F1 over the labels present in
    ``y_true`` or ``y_pred`` (sorted), indexed by class number, 0.0 past its end. When a class is
    absent the values shift (``class_c`` then holds a later class's F1); the true per-class F1 is
    `label_scores`' ``per_class``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        present = f1_score(y_true, y_pred, average=None, zero_division=0)
    return {f"class_{c}": {"F1": float(present[c]) if c < len(present) else 0.0} for c in range(num_classes)}


COLLAPSE_SHARE = 0.95


def majority_collapse(predicted: np.ndarray, share: float = COLLAPSE_SHARE) -> bool:
    """Whether a classifier has collapsed onto one class: its most often predicted class takes at
    least ``share`` of the predictions (every prediction one class is the extreme case).

    ``predicted``: the predicted class of each test image. From a confusion matrix (rows true,
    columns predicted) pass ``np.repeat(np.arange(C), confusion.sum(axis=0))``. A model that ignores
    the image predicts the training set's majority class everywhere; 95 % rather than 100 % also
    counts the near-constant models that only stray on a few images. Only the predictions are
    read: on a test set where one class itself holds ≥ ``share`` of the images, a good model is
    flagged too, so read it beside the truth's largest class share (the challenge's small
    classification tasks are far below 95 %).
    """
    predicted = np.asarray(predicted)
    if predicted.ndim != 1 or predicted.size == 0:
        raise ValueError(f"expected a non-empty vector of predicted classes, got shape {predicted.shape}")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    _, counts = np.unique(predicted, return_counts=True)
    return bool(counts.max() / predicted.size >= share)  # a correctly rounded ratio: 57/60 >= 0.95 holds
