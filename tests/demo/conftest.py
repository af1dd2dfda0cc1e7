"""A tiny model served by the demo app on 127.0.0.1 for the whole module (Gradio is the optional ``demo`` extra)."""

import pytest
import torch

from m2dino import M2DINO, M2DINOConfig

gradio = pytest.importorskip("gradio", reason="the demo extra is not installed (pip install -e '.[demo]')")

TASKS = ["fetal_head", "fetal_plane_cls", "fetal_head_circumference"]


@pytest.fixture(scope="module")
def demo_app():
    from m2dino.demo import launch

    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone="test", tasks=TASKS, moe_blocks=(3,), num_experts=2, top_k=1,
                                decoder_features=8, image_size=32))
    app = launch(model, host="127.0.0.1", port=None, block=False)
    try:
        yield app
    finally:
        app.close()
