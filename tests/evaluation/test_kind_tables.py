"""The label kind keys every per-kind table: each kind has its label-kind entry, its head and its
evaluation entry; they agree on the headline metrics; and the files' names for each kind are the
ones `m2dino.tasks.label_kinds` documents."""

import numpy as np
import pytest

from m2dino.evaluation.ground_truth import GroundTruth
from m2dino.evaluation.kind_evaluations import EVALUATIONS
from m2dino.evaluation.problems import TaskProblems
from m2dino.evaluation.scoring.per_task import ScoreSettings
from m2dino.models.heads import HEADS
from m2dino.models.predictions import (
    ClassificationPrediction,
    DetectionPrediction,
    KeypointPrediction,
    ScalarPrediction,
)
from m2dino.tasks import KINDS, TaskType, list_tasks

# label kind -> (TaskType, metrics.json section, submission file, head): label_kinds' docstring table.
VOCABULARY = {
    "mask": (TaskType.SEGMENTATION, "segmentation", None, "SegmentationHead"),
    "class": (TaskType.CLASSIFICATION, "classification", "classification_predictions.json", "ClassificationHead"),
    "boxes": (TaskType.DETECTION, "detection", "detection_predictions.json", "DetectionHead"),
    "keypoints": (TaskType.REGRESSION, "regression", "regression_predictions.json", "KeypointHead"),
    "scalar": (TaskType.REGRESSION, "measurement", "measurement_predictions.json", "ScalarHead"),
}

MASK = np.zeros((4, 4), np.uint8)
MASK[1:3, 1:3] = 1
BOX = np.array([1.0, 1.0, 3.0, 3.0])
POINTS = np.array([[1.0, 1.0], [3.0, 2.0]])
# One ground-truth row per kind and the perfect prediction of it.
ROWS = {
    "mask": (dict(num_classes=2, mask_path="m.png", mask=MASK), MASK),
    "class": (dict(num_classes=2, label=1), ClassificationPrediction(1, np.array([0.0, 1.0]))),
    "boxes": (dict(num_classes=1, label=BOX), DetectionPrediction(BOX[None], np.array([0.9]), np.zeros(1, int))),
    "keypoints": (dict(num_classes=2, label=POINTS), KeypointPrediction(POINTS)),
    "scalar": (dict(num_classes=0, label=150.0), ScalarPrediction(150.0, "mm")),
}


def test_every_label_kind_has_its_head_and_its_evaluation_entry():
    assert set(KINDS) == set(HEADS) == set(EVALUATIONS) == set(VOCABULARY) == set(ROWS)


@pytest.mark.parametrize("kind", list(VOCABULARY))
def test_each_kind_has_the_names_the_files_use(kind):
    task_type, section, file, head = VOCABULARY[kind]
    assert KINDS[kind].task_type is task_type
    assert (EVALUATIONS[kind].section, EVALUATIONS[kind].file) == (section, file)
    assert HEADS[kind].__name__ == head and HEADS[kind].label_kind == kind


def test_every_task_is_judged_by_its_kinds_headline_metrics():
    for spec in list_tasks(benchmark=None):
        kind = spec.label_kind.name
        assert spec.metrics == EVALUATIONS[kind].headline == KINDS[kind].headline_metrics


@pytest.mark.parametrize("kind", list(VOCABULARY))
@pytest.mark.parametrize("predicted", [True, False], ids=["predicted", "missing"])
def test_each_scorer_gives_its_kinds_headline_and_additional_metrics(kind, predicted):
    fields, prediction = ROWS[kind]
    row = GroundTruth(task_id="t", kind=kind, image_path="a.png", image_size=(4, 4), **fields)
    evaluation = EVALUATIONS[kind]
    result, extra = evaluation.score([row], lambda _: prediction if predicted else None, TaskProblems(),
                                     ScoreSettings())
    headline = set(KINDS[kind].headline_metrics)
    assert headline <= set(result) and headline == set(extra["strict"])  # the summary averages the strict ones
    if predicted:
        assert set(evaluation.additional) <= set(extra)
