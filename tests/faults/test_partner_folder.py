"""A saved CNN partner (`m2dino evaluate --model OUT/partner`) is input from a stranger too: its encoder
name reaches timm, which would read an "hf-hub:" or "local-dir:" name from the network or another folder."""

import pytest

from m2dino.limits import LimitError
from m2dino.training.semi.partner import PartnerConfig


@pytest.mark.parametrize("encoder", ["hf-hub:someone/resnet18", "local-dir:/etc", "resnet18 ", None])
def test_only_a_plain_timm_architecture_name_is_honoured(encoder):
    with pytest.raises(ValueError, match=r"PartnerConfig.encoder=.*: expected a timm architecture name"):
        PartnerConfig(tasks=["fetal_head"], encoder=encoder)
    assert PartnerConfig(tasks=["fetal_head"], encoder="resnet18").encoder == "resnet18"


@pytest.mark.parametrize("field, value", [("width", 10**6), ("decoder_features", 10**6), ("image_size", 10**6 * 32)])
def test_partner_sizes_are_bounded_before_building(field, value):
    with pytest.raises(LimitError, match=f"PartnerConfig.{field}.*exceeds m2dino's limit"):
        PartnerConfig(tasks=["fetal_head"], **{field: value})
