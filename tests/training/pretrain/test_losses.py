"""The self-distillation losses and schedules on hand-made tensors."""

import math

import numpy as np
import pytest
import torch

from m2dino.models.backbone import DINOv3Backbone
from m2dino.training.pretrain.head import DINOHead
from m2dino.training.pretrain.losses import (
    dino_loss,
    gram_loss,
    ibot_loss,
    koleo_loss,
    sinkhorn_knopp,
    teacher_output_entropy,
    teacher_output_spread,
)
from m2dino.training.pretrain.masking import forward_masked, random_masks
from m2dino.training.pretrain.schedules import ema_momentum, teacher_temperature


def test_sinkhorn_targets_are_distributions_that_use_every_prototype_equally():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    q = sinkhorn_knopp(logits, temperature=0.5, iterations=50)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(6), atol=1e-4, rtol=0)
    torch.testing.assert_close(q.sum(dim=0), torch.full((4,), 6 / 4), atol=1e-3, rtol=0)
    # the balancing keeps each row's preference: the top prototype of a row stays its top target
    assert (q.argmax(dim=1) == logits.argmax(dim=1)).float().mean() >= 0.5
    # the default 3 iterations already balance the prototypes far better than a plain softmax
    softmax_imbalance = torch.softmax(logits / 0.5, dim=1).sum(dim=0).sub(1.5).abs().max()
    assert sinkhorn_knopp(logits, 0.5).sum(dim=0).sub(1.5).abs().max() < softmax_imbalance / 3


def test_dino_loss_is_the_cross_entropy_over_pairs_of_different_crops():
    targets = [torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])]
    logits = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.1, 0.0]]), torch.tensor([[0.0, 0.2]])]
    loss = dino_loss(logits, targets, student_temperature=0.1)

    def ce(target, logit):
        return -(target * torch.log_softmax(logit / 0.1, dim=-1)).sum()

    pairs = [(0, 1), (1, 0), (2, 0), (2, 1)]  # (student crop, teacher crop), a global crop never with itself
    expected = sum(ce(targets[j], logits[i]) for i, j in pairs) / len(pairs)
    torch.testing.assert_close(loss, expected)


def test_ibot_loss_weighs_each_image_equally():
    masks = torch.tensor([[True, False, False], [True, True, False], [False, False, False]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    logits = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # uniform: every patch costs log 2
    # two masked images at log 2 each, over all three images (DINOv3 divides by the batch)
    torch.testing.assert_close(ibot_loss(logits, targets, masks, 1.0), torch.tensor(2 * math.log(2) / 3))
    logits = torch.tensor([[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # image 0 right, image 1 at chance
    expected = (0.0 + math.log(2)) / 3  # not (0 + 2 log 2)/3: image 1's two patches count as one image
    torch.testing.assert_close(ibot_loss(logits, targets, masks, 1.0), torch.tensor(expected), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="3 masked patches"):
        ibot_loss(logits[:2], targets[:2], masks)
    nothing_masked = ibot_loss(torch.zeros(0, 2, requires_grad=True), torch.zeros(0, 2),
                               torch.zeros(2, 3, dtype=torch.bool))
    assert nothing_masked == 0 and nothing_masked.requires_grad  # DDP needs the head on the graph


def test_koleo_on_known_points():
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    torch.testing.assert_close(koleo_loss(square), torch.tensor(-math.log(math.sqrt(2))), atol=1e-6, rtol=0)
    # features are L2-normalised first: scaling a point changes nothing; crowding raises the loss
    torch.testing.assert_close(koleo_loss(square * torch.tensor([[3.0], [1.0], [0.5], [2.0]])), koleo_loss(square))
    crowded = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [0.0, -1.0]])
    assert koleo_loss(crowded) > koleo_loss(square)


def test_gram_loss_compares_patch_similarities_not_scale():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    assert gram_loss(x, 3 * x) < 1e-10
    assert gram_loss(x, torch.randn(2, 5, 8)) > 0.01
    # opposite patches (cosine -1) and orthogonal ones (0) look the same to the anchor
    a = torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])
    b = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert gram_loss(a, b) == 0


def test_teacher_spread_is_zero_for_identical_outputs_and_scale_free():
    same = torch.tensor([[0.3, -0.2, 0.1]]).repeat(4, 1)
    assert teacher_output_spread(same) == 0
    varied = torch.randn(4, 3)
    assert teacher_output_spread(varied) > 0.1
    assert teacher_output_spread(varied * 1e-4) == pytest.approx(teacher_output_spread(varied), rel=1e-4)


def test_teacher_entropy_is_a_fraction_of_ln_k():
    assert teacher_output_entropy(torch.zeros(4, 1024), 0.04) == pytest.approx(1.0)  # uniform: collapsed
    # K = 2, probabilities 1/4 and 3/4: H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335, / ln 2 = 0.811278
    logits = torch.tensor([[0.0, 0.1 * math.log(3.0)]])
    assert teacher_output_entropy(logits, 0.1) == pytest.approx(0.811278, abs=1e-6)
    peaked = torch.full((2, 64), -1.0)
    peaked[:, 0] = 1.0
    assert teacher_output_entropy(peaked, 0.04) < 1e-6


def test_schedules_run_from_start_to_end():
    assert teacher_temperature(0, 10) == 0.04 and teacher_temperature(5, 10) == pytest.approx(0.055)
    assert teacher_temperature(10, 10) == 0.07 and teacher_temperature(3, 0) == 0.07
    assert ema_momentum(0, 100) == pytest.approx(0.992) and ema_momentum(100, 100) == pytest.approx(1.0)
    assert ema_momentum(50, 100) == pytest.approx(0.996)


def test_dino_head_scores_are_cosines_to_unit_prototypes():
    torch.manual_seed(0)
    head = DINOHead(8, prototypes=5, hidden_dim=16, bottleneck_dim=4)
    x = torch.randn(3, 8)
    out = head(x)
    assert out.shape == (3, 5) and out.abs().max() <= 1 + 1e-6
    with torch.no_grad():
        head.prototypes.mul_(7.0)  # the prototypes' norm is fixed: only their direction counts
    torch.testing.assert_close(head(x), out)


def test_random_masks_are_blocks_of_the_drawn_share():
    rng = np.random.default_rng(0)
    masks = random_masks(200, (6, 6), rng, ratio=(0.25, 0.5), probability=0.5)
    counts = masks.sum(axis=1)
    masked = counts > 0
    assert 0.35 < masked.mean() < 0.65
    assert counts[masked].min() >= 9 and counts[masked].max() <= 18
    # blocks, not scattered patches: most masked patches have a masked 4-neighbour
    grids = masks[masked].reshape(-1, 6, 6)
    padded = np.pad(grids, ((0, 0), (1, 1), (1, 1)))
    neighbour = padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1] | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:]
    assert (neighbour & grids).sum() / grids.sum() > 0.9
    assert not random_masks(5, (4, 4), rng, probability=0.0).any()


def test_student_sees_mask_tokens_instead_of_masked_patches():
    torch.manual_seed(0)
    backbone = DINOv3Backbone("test").eval()
    token = torch.nn.Parameter(torch.randn(1, 1, backbone.embed_dim))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(forward_masked(backbone, x, None, token), backbone.forward_features(x).tokens)
        everything = torch.ones(2, 4, dtype=torch.bool)
        out = forward_masked(backbone, x, everything, token)
    # every patch masked: the two images are indistinguishable
    torch.testing.assert_close(out[0], out[1])
