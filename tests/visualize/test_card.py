"""The example scans (synthetic, made on first use), and the example overlay embedded in a saved model's card."""

import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig
from m2dino.visualize import examples as example_scans
from m2dino.visualize.card import add_card_example
from m2dino.visualize.examples import example_images


def test_examples_are_synthetic_scans_made_once_and_the_same_every_time(tmp_path, monkeypatch):
    """No real scan ships with the package (data is never shipped): the examples are made on first use."""
    monkeypatch.setattr(example_scans, "EXAMPLES_DIR", tmp_path / "examples")
    made = example_images()
    assert [p.name for p in made] == ["synthetic_fetal_head.png", "synthetic_fetal_plane_cls.png"]
    first = [p.read_bytes() for p in made]
    with Image.open(made[0]) as image:
        assert image.size == example_scans.EXAMPLE_SIZE[::-1]
    made[0].unlink()
    assert [p.read_bytes() for p in example_images()] == first  # re-made identically
    assert not list((tmp_path / "examples").glob("*.tmp"))


def test_card_embeds_an_example_once_before_usage(tmp_path):
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head", "fetal_head_det"], moe_blocks=(3,),
                                num_experts=2, top_k=1, decoder_features=8, image_size=32))
    with pytest.raises(FileNotFoundError, match="no model card at"):
        add_card_example(model, tmp_path)
    model.save_pretrained(tmp_path)
    path = add_card_example(model, tmp_path, tile_width=200)
    with Image.open(path) as image:
        assert image.size == (2 * 200 + 4, 150)  # two tiles of the 480×360 synthetic fetal-head scan
    add_card_example(model, tmp_path, tasks=["fetal_head"], tile_width=200)  # again: replaced, not added
    card = (tmp_path / "README.md").read_text()
    assert card.count("## Example") == 1 and card.count("](example.png)") == 1
    assert card.index("## Example") < card.index("## Usage")
    assert "1 of its 2 tasks on a synthetic fetal-head scan" in card
    with Image.open(path) as image:
        assert image.size == (200, 150)
