"""Pretraining batches: a function of the step (any number of workers), and the --data specs."""

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino.data import UnlabeledSource
from m2dino.data.errors import DataError
from m2dino.training.pretrain.crops import CropConfig
from m2dino.training.pretrain.data import PretrainBatches, step_loader
from m2dino.training.pretrain.sources import unlabeled_sources


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(20, 255, (40, 40), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


def batches(folder, rank=0):
    return PretrainBatches(UnlabeledSource.from_folder(folder),
                           CropConfig(global_size=32, local_size=16, local_crops=2),
                           batch_size=2, patch_size=16, mean=(0.5,) * 3, std=(0.25,) * 3, seed=3, rank=rank)


def test_a_batch_is_a_function_of_the_step_whatever_the_workers(folder):
    data = batches(folder)
    batch = data[5]
    assert batch["global"].shape == (4, 3, 32, 32) and batch["local"].shape == (4, 3, 16, 16)
    assert batch["masks"].shape == (4, 4) and batch["masks"].dtype == torch.bool
    in_process = list(step_loader(data, 3, 6, num_workers=0))
    with_workers = list(step_loader(data, 3, 6, num_workers=2))
    for a, b in zip(in_process, with_workers):
        assert all(torch.equal(a[k], b[k]) for k in ("global", "local", "masks"))
    assert torch.equal(in_process[2]["global"], batch["global"])  # step 5, however it was reached
    assert not torch.equal(in_process[0]["global"], in_process[1]["global"])
    assert not torch.equal(batches(folder, rank=1)[5]["global"], batch["global"])  # ranks see other crops


def test_bad_sizes_and_sources_are_named(folder, tmp_path):
    with pytest.raises(ValueError, match="local crop size 20 is not a multiple of the patch size 16"):
        PretrainBatches(UnlabeledSource.from_folder(folder), CropConfig(global_size=32, local_size=20), 2, 16,
                        (0.5,) * 3, (0.25,) * 3)
    assert len(unlabeled_sources([str(folder), str(folder)])) == 8
    with pytest.raises(DataError, match="unknown source 'nosuch'; expected a folder, fmc:ROOT or NAME:PATH"):
        unlabeled_sources(["nosuch:/data"])
    with pytest.raises(DataError, match="no images to pretrain on"):
        PretrainBatches(UnlabeledSource([]), CropConfig(), 2, 16, (0.5,) * 3, (0.25,) * 3)
