"""What a pseudo-label and a consistency target are for each kind of head, on hand-made outputs."""

import math

import pytest
import torch

from m2dino.models.heads import ClassificationHead, DetectionHead, KeypointHead, ScalarHead, SegmentationHead
from m2dino.models.losses import IGNORE_INDEX
from m2dino.models.outputs import (
    ClassificationOutput,
    DetectionOutput,
    KeypointOutput,
    ScalarOutput,
    SegmentationOutput,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_classification_keeps_images_whose_top_probability_reaches_the_threshold():
    head = ClassificationHead(4, 2)
    # softmax of [log 97, log 3] = [0.97, 0.03]; of [log 6, log 4] = [0.6, 0.4]; of [log 1, log 99]
    logits = torch.log(torch.tensor([[97.0, 3.0], [6.0, 4.0], [1.0, 99.0]]))
    pseudo = head.pseudo_labels(ClassificationOutput("t", logits=logits), threshold=0.95)
    assert pseudo.keep.tolist() == [True, False, True]
    assert pseudo.targets.tolist() == [0, 1]
    assert float(pseudo.weight) == pytest.approx(2 / 3)
    assert head.pseudo_labels(ClassificationOutput("t", logits=logits), threshold=0.0).keep.all()


def test_segmentation_ignores_unconfident_pixels_and_drops_images_without_any():
    head = SegmentationHead(8, 2, features=8)
    confident, unsure = torch.log(torch.tensor([1.0, 99.0])), torch.log(torch.tensor([45.0, 55.0]))
    logits = torch.stack([unsure, unsure, unsure, confident]).T.reshape(1, 2, 2, 2)  # one confident pixel
    logits = torch.cat([logits, unsure.view(1, 2, 1, 1).expand(1, 2, 2, 2)])          # none
    pseudo = head.pseudo_labels(SegmentationOutput("t", logits=logits), threshold=0.9)
    assert pseudo.keep.tolist() == [True, False]
    assert pseudo.targets.tolist() == [[[IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 1]]]
    assert float(pseudo.weight) == pytest.approx(1 / 8)


def test_keypoints_are_kept_when_every_heatmap_is_peaked():
    head = KeypointHead(8, 2, features=8)
    sharp = torch.full((4, 4), -20.0)
    sharp[1, 2] = 10.0  # all the mass in one cell
    flat = torch.zeros(4, 4)
    heatmaps = torch.stack([torch.stack([sharp, sharp]), torch.stack([sharp, flat])])  # B=2, K=2
    points = torch.tensor([[[10.0, 6.0], [10.0, 6.0]], [[10.0, 6.0], [8.0, 8.0]]])
    pseudo = head.pseudo_labels(KeypointOutput("t", heatmap_logits=heatmaps, keypoints=points), threshold=0.9)
    assert pseudo.keep.tolist() == [True, False]  # flat: 9 of 16 cells around the peak = 0.5625 < 0.9
    assert torch.equal(pseudo.targets, points[:1])


def test_detection_pseudo_boxes_are_confident_peaks_decoded_like_predictions():
    head = DetectionHead(8, 1, features=8)
    heat = torch.full((2, 1, 8, 8), -10.0)
    heat[0, 0, 2, 3] = logit(0.99)
    heat[1, 0, 5, 5] = logit(0.5)
    size = torch.zeros(2, 2, 8, 8)
    size[0, :, 2, 3] = torch.tensor([0.25, 0.5])  # 8 × 16 px of a 32 px input
    offset = torch.zeros(2, 2, 8, 8)
    offset[0, :, 2, 3] = 0.5
    output = DetectionOutput("t", heatmap_logits=heat, size=size, offset=offset, stride=4, image_size=(32, 32))
    pseudo = head.pseudo_labels(output, threshold=0.9)
    assert pseudo.keep.tolist() == [True, False]
    (target,) = pseudo.targets
    cx, cy = (3 + 0.5) * 4, (2 + 0.5) * 4
    assert torch.allclose(target["boxes"], torch.tensor([[cx - 4, cy - 8, cx + 4, cy + 8]]))
    assert target["labels"].tolist() == [0]
    assert head.loss(output.select(torch.tensor([0])), pseudo.targets).isfinite()


def test_scalar_keeps_every_value():
    head = ScalarHead(4)
    pseudo = head.pseudo_labels(ScalarOutput("t", value=torch.tensor([150.0, 170.0])), threshold=0.95)
    assert pseudo.keep.all() and pseudo.targets.tolist() == [150.0, 170.0]


@pytest.mark.parametrize("make", [
    lambda: (ClassificationHead(4, 3), lambda x: ClassificationOutput("t", logits=x[:, :3, 0, 0])),
    lambda: (SegmentationHead(4, 3, features=8), lambda x: SegmentationOutput("t", logits=x[:, :3])),
    lambda: (KeypointHead(4, 2, features=8),
             lambda x: KeypointOutput("t", heatmap_logits=x[:, :2], keypoints=x[:, :2, :2, 0] * 10)),
    lambda: (DetectionHead(4, 1, features=8),
             lambda x: DetectionOutput("t", heatmap_logits=x[:, :1], size=x[:, 1:3], offset=x[:, 2:4], stride=4,
                                       image_size=(32, 32))),
    lambda: (ScalarHead(4), lambda x: ScalarOutput("t", value=x[:, 0, 0, 0] * 10 + 150)),
])
def test_consistency_is_zero_for_equal_outputs_and_teaches_only_the_student(make):
    head, output = make()
    x = torch.randn(2, 4, 8, 8)
    student_in = x.clone().requires_grad_(True)
    teacher_in = x.clone().requires_grad_(True)
    assert float(head.consistency(output(student_in), output(teacher_in)).detach()) == pytest.approx(0.0, abs=1e-7)
    loss = head.consistency(output(student_in), output(teacher_in + torch.randn_like(x)))
    assert loss > 0
    loss.backward()
    assert student_in.grad.abs().sum() > 0 and teacher_in.grad is None
