"""Tiny model configurations shared by the model tests (random init, a few hundred k parameters)."""

import torch

from m2dino import M2DINO, M2DINOConfig

FOUR_TYPES = ["fetal_head", "fetal_plane_cls", "thyroid_nodule_det", "IUGC"]


def tiny_config(**overrides) -> M2DINOConfig:
    kwargs = dict(backbone="test", tasks=FOUR_TYPES, moe_blocks=(2, 3), num_experts=4, top_k=2,
                  decoder_features=16, image_size=(32, 48))
    kwargs.update(overrides)
    return M2DINOConfig(**kwargs)


def tiny_model(seed: int = 0, **overrides) -> M2DINO:
    torch.manual_seed(seed)
    return M2DINO(tiny_config(**overrides)).eval()


def assert_outputs_equal(a, b, atol: float = 1e-5) -> None:
    assert type(a) is type(b)
    for name, value in vars(a).items():
        if torch.is_tensor(value) and name != "aux_loss":
            torch.testing.assert_close(value, getattr(b, name), atol=atol, rtol=0)
