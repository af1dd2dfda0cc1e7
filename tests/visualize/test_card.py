"""The bundled example scans, and the example overlay embedded in a saved model's card."""

import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.visualize.card import add_card_example
from m2dino.visualize.examples import example_images


def test_bundled_examples_are_real_scans_with_attribution():
    examples = example_images()
    assert [p.name for p in examples] == ["african_planes_patient001_DZA_plane1.png", "hc18_003_HC.png"]
    attribution = (examples[0].parent / "ATTRIBUTION.md").read_text()
    assert all(p.name in attribution for p in examples) and "CC BY 4.0" in attribution


def test_card_embeds_an_example_once_before_usage(tmp_path):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head", "fetal_head_det"], moe_blocks=(3,),
                                num_experts=2, top_k=1, decoder_features=8, image_size=32))
    with pytest.raises(FileNotFoundError, match="no model card at"):
        add_card_example(model, tmp_path)
    model.save_pretrained(tmp_path)
    path = add_card_example(model, tmp_path, tile_width=200)
    with Image.open(path) as image:
        assert image.size == (2 * 200 + 4, 135)  # two tiles of the 800×540 HC18 scan
    add_card_example(model, tmp_path, tasks=["fetal_head"], tile_width=200)  # again: replaced, not added
    card = (tmp_path / "README.md").read_text()
    assert card.count("## Example") == 1 and card.count("](example.png)") == 1
    assert card.index("## Example") < card.index("## Usage")
    assert "1 of its 2 tasks on the bundled HC18 scan" in card
    with Image.open(path) as image:
        assert image.size == (200, 135)
