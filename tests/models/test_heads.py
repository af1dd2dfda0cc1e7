import numpy as np
import pytest
import torch

from m2dino.image import ResizeGeometry
from m2dino.models.heads import KeypointHead, SegmentationHead, build_head
from m2dino.models.heads.detection import DetectionHead
from m2dino.models.heads.regression import ScalarHead, soft_argmax
from m2dino.models.losses import classification_loss, segmentation_loss
from m2dino.models.outputs import DetectionOutput, KeypointOutput, SegmentationOutput
from m2dino.tasks import get_task


def _perfect_detection_output(head, boxes, image_size=(64, 96)):
    h, w = image_size[0] // 4, image_size[1] // 4
    blank = DetectionOutput("thyroid_nodule_det", heatmap_logits=torch.zeros(len(boxes), 1, h, w),
                            size=torch.zeros(len(boxes), 2, h, w), offset=torch.zeros(len(boxes), 2, h, w),
                            stride=4, image_size=image_size)
    t = head.build_targets(blank, [torch.tensor([b], dtype=torch.float32) for b in boxes])
    logits = torch.where(t["heatmap"] == 1, torch.tensor(10.0), torch.tensor(-10.0)) + t["heatmap"]
    return DetectionOutput("thyroid_nodule_det", heatmap_logits=logits, size=t["size"], offset=t["offset"],
                           stride=4, image_size=image_size), t


def test_detection_targets_decode_back_to_the_boxes():
    head = DetectionHead(in_dim=8, features=8)
    boxes = [[10.0, 6.5, 42.0, 30.0], [50.25, 20.0, 90.0, 63.0]]
    output, targets = _perfect_detection_output(head, boxes)
    decoded, scores, labels = DetectionHead.decode(output, top_n=1)
    torch.testing.assert_close(decoded[:, 0], torch.tensor(boxes), atol=1e-4, rtol=0)
    assert labels.tolist() == [[0], [0]] and (scores > 0.99).all()
    assert targets["mask"].sum() == 2
    assert head.loss(output, [torch.tensor([b]) for b in boxes]) < 0.01


def test_detection_rejects_degenerate_boxes_and_wrong_counts():
    head = DetectionHead(in_dim=8, features=8)
    output, _ = _perfect_detection_output(head, [[0, 0, 8, 8]])
    with pytest.raises(ValueError, match="degenerate detection box"):
        head.build_targets(output, [torch.tensor([[5.0, 5.0, 5.0, 9.0]])])
    with pytest.raises(ValueError, match="detection targets for 2 images; expected 1"):
        head.build_targets(output, [torch.zeros(0, 4), torch.zeros(0, 4)])


def test_soft_argmax_finds_a_sharp_peak_in_input_pixels():
    logits = torch.full((1, 2, 8, 12), -50.0)
    logits[0, 0, 3, 5] = 50.0   # cell centre (5.5, 3.5) cells → (22, 14) px at stride 4
    logits[0, 1, 7, 0] = 50.0
    torch.testing.assert_close(soft_argmax(logits, 4), torch.tensor([[[22.0, 14.0], [2.0, 30.0]]]))


def test_scalar_head_reports_values_in_the_task_unit():
    head = ScalarHead(in_dim=4)
    head.set_target_stats(mean=170.0, std=40.0)
    with pytest.raises(ValueError, match="std must be positive"):
        head.set_target_stats(0.0, 0.0)
    value = torch.tensor([210.0, 130.0])
    from m2dino.models.outputs import ScalarOutput
    assert head.loss(ScalarOutput("x", value=value), value) == 0
    assert head.loss(ScalarOutput("x", value=value), value + 40) == pytest.approx(0.5)  # smooth L1 at 1 std


def test_segmentation_loss_is_small_for_a_perfect_prediction_and_checks_targets():
    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[:, 2:5, 2:6] = 1
    logits = torch.nn.functional.one_hot(mask, 2).permute(0, 3, 1, 2).float() * 20
    assert segmentation_loss(logits, mask) < 1e-3
    assert segmentation_loss(-logits, mask) > 1.5
    with pytest.raises(ValueError, match="expected \\(2, 8, 8\\)"):
        segmentation_loss(logits, mask[:, :4])
    with pytest.raises(ValueError, match="outside 0..1"):
        segmentation_loss(logits, mask * 3)
    with pytest.raises(ValueError, match="outside 0..2"):
        classification_loss(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_predictions_are_mapped_back_to_original_pixels():
    geometry = ResizeGeometry.create((50, 100), (32, 32), "letterbox")  # scale 0.32, pad_y 8
    assert geometry.content_box == (0, 8, 32, 24)
    # a mask whose right half of the content is class 1
    logits = torch.zeros(1, 2, 32, 32)
    logits[0, 1] = -5.0
    logits[0, 1, :, 16:] = 5.0
    seg = SegmentationHead(8, 2, 8).predict(SegmentationOutput("fetal_head", logits=logits), 0, geometry,
                                            get_task("fetal_head"))
    assert seg.mask.shape == (50, 100) and seg.mask.dtype == np.uint8
    assert seg.mask[:, :49].max() == 0 and seg.mask[:, 51:].min() == 1
    keypoints = torch.tensor([[[16.0, 16.0], [0.0, 8.0]]])
    kp = KeypointHead(8, 2, 8).predict(KeypointOutput("IUGC", heatmap_logits=torch.zeros(1, 2, 8, 8),
                                                      keypoints=keypoints), 0, geometry, get_task("IUGC"))
    np.testing.assert_allclose(kp.points, [[50.0, 25.0], [0.0, 0.0]], atol=1e-9)
    head = DetectionHead(in_dim=8, features=8)
    output, _ = _perfect_detection_output(head, [[8.0, 12.0, 24.0, 20.0]], image_size=(32, 32))
    det = head.predict(output, 0, geometry, get_task("thyroid_nodule_det"))
    np.testing.assert_allclose(det.best_box, [25.0, 12.5, 75.0, 37.5], atol=1e-3)


def test_interchangeable_points_loss_ignores_their_order_and_predictions_come_left_to_right():
    head = build_head(get_task("FUGC"), in_dim=8, features=8)
    assert head.interchangeable and not build_head(get_task("IUGC"), in_dim=8, features=8).interchangeable
    target = torch.tensor([[[4.0, 20.0], [28.0, 6.0]]])
    swapped = KeypointOutput("FUGC", heatmap_logits=torch.zeros(1, 2, 8, 8), keypoints=target.flip(1))
    assert head.loss(swapped, target).item() == 0.0
    anatomical = KeypointHead(8, 2, 8)  # the same swap costs an anatomical task its full error
    assert anatomical.loss(swapped, target).item() > 0.3
    geometry = ResizeGeometry.create((32, 32), (32, 32), "letterbox")
    points = head.predict(swapped, 0, geometry, get_task("FUGC")).points
    np.testing.assert_allclose(points, target[0].numpy())  # leftmost first
