import math

import pytest
import torch

from m2dino.image import IMAGENET_MEAN, IMAGENET_STD
from m2dino.training.semi import SemiConfig, consistency_weight, strong_view


def test_each_method_gets_its_published_defaults_and_flags_override_them():
    assert ((SemiConfig("fixmatch").threshold, SemiConfig("fixmatch").weight, SemiConfig("fixmatch").rampup)
            == (0.95, 1.0, 0.0))
    mt = SemiConfig("mean-teacher")
    assert (mt.threshold, mt.weight, mt.rampup, mt.uses_teacher) == (0.0, 0.1, 0.4, True)
    assert not SemiConfig("cps").uses_teacher
    assert SemiConfig("fixmatch", threshold=0.8).threshold == 0.8


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "pseudo"}, "--semi 'pseudo'; expected one of mean-teacher, fixmatch, cps"),
    ({"method": "fixmatch", "threshold": 1.5}, r"--semi-threshold must be in \[0, 1\], got 1.5"),
    ({"method": "cps", "unlabeled_ratio": 0}, "--unlabeled-ratio must be > 0"),
    ({"method": "mean-teacher", "ema_momentum": 1.0}, r"--ema-momentum must be in \[0, 1\)"),
])
def test_bad_settings_name_the_flag(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SemiConfig(**kwargs)


def test_sigmoid_rampup_reaches_the_weight_at_the_end_of_the_ramp():
    config = SemiConfig("mean-teacher", weight=0.1, rampup=0.5)
    assert consistency_weight(config, 0, 100) == pytest.approx(0.1 * math.exp(-5))
    assert consistency_weight(config, 25, 100) == pytest.approx(0.1 * math.exp(-5 * 0.25))
    assert consistency_weight(config, 50, 100) == pytest.approx(0.1)
    assert consistency_weight(config, 90, 100) == pytest.approx(0.1)
    assert consistency_weight(SemiConfig("fixmatch"), 0, 100) == 1.0


def test_strong_view_is_reproducible_changes_the_image_and_keeps_its_shape():
    x = torch.randn(3, 3, 32, 48)
    a = strong_view(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(7))
    b = strong_view(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(7))
    c = strong_view(x, IMAGENET_MEAN, IMAGENET_STD, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().mean() > 0.05
    # stays a valid image: de-normalised values within [0, 1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    pixels = a * std + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
