"""HC18 at half resolution: the adapter reads the copy with the same splits, the same filled heads
(at a quarter of the area) and a doubled pixel size; odd sides lose their last row or column."""

import numpy as np
import pytest
from PIL import Image

from hc18_half_resolution import halve_contour, halve_image, main
from m2dino.data.adapters import hc18
from tests.data.layouts import write_hc18


def test_the_copy_keeps_splits_heads_and_millimetres(tmp_path):
    full = hc18.load(write_hc18(tmp_path / "full"), tasks=("fetal_head", "fetal_head_circumference"))
    main([str(tmp_path / "full"), str(tmp_path / "half")])
    half = hc18.load(tmp_path / "half", tasks=("fetal_head", "fetal_head_circumference"))
    for split in full:
        assert [e.source.split("/")[-1] for e in full[split].items] == \
               [e.source.split("/")[-1] for e in half[split].items]
        for a, b in zip(full[split].items, half[split].items):
            sa, sb = a.load(), b.load()
            assert sb.meta["pixel_size_mm"] == pytest.approx(2 * sa.meta["pixel_size_mm"])
            if a.task == "fetal_head_circumference":
                assert sb.label == sa.label
                continue
            assert sb.image.shape[:2] == (sa.image.shape[0] // 2, sa.image.shape[1] // 2)
            assert sb.meta["mask_from"] == sa.meta["mask_from"]
            # the filled head is at most one half-resolution pixel wider along its edge
            assert 1.0 <= 4 * sb.label.sum() / sa.label.sum() < 1.25


def test_odd_sides_lose_their_last_row_or_column(tmp_path):
    image = np.arange(5 * 7, dtype=np.uint8).reshape(5, 7) * 7
    contour = np.zeros((5, 7), np.uint8)
    contour[1, 3] = contour[4, 6] = 255  # the second lies in the row and column that are dropped
    Image.fromarray(image).save(tmp_path / "image.png")
    Image.fromarray(contour).save(tmp_path / "contour.png")
    halved = np.asarray(halve_image(tmp_path / "image.png"), dtype=float)
    assert halved.shape == (2, 3)
    assert halved[0, 0] == pytest.approx(image[:2, :2].mean(), abs=0.5)
    blocks = np.asarray(halve_contour(tmp_path / "contour.png"))
    assert blocks.shape == (2, 3) and blocks[0, 1] == 255 and blocks.sum() == 255
