import numpy as np
import pytest
import torch

from m2dino.data import DataError, Sample, SampleCollection
from m2dino.data.sampling import TaskSampler
from m2dino.data.torch_dataset import (
    Collate,
    MultiTaskDataset,
    SampleKey,
    TaskBatchSampler,
    build_dataloader,
)
from m2dino.image import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
    backbone_normalization,
)

from .helpers import gray


def _samples() -> dict[str, list[Sample]]:
    mask = np.zeros((30, 40), np.uint8)
    mask[5:20, 10:30] = 2
    return {
        "head_symphysis_multi": [Sample(gray(30, 40, i), "head_symphysis_multi", mask) for i in range(3)],
        "breast_3cls": [Sample(gray(30, 40, i), "breast_3cls", i % 3) for i in range(5)],
        "thyroid_nodule_det": [Sample(gray(30, 40, i), "thyroid_nodule_det", [[4, 6, 20, 26]]) for i in range(2)],
        "IUGC": [Sample(gray(30, 40, i), "IUGC", [[1, 2], [3, 4], [39, 29]]) for i in range(2)],
        "fetal_head_circumference": [Sample(gray(30, 40, i), "fetal_head_circumference", 100.0 + i)
                                     for i in range(2)],
    }


def test_batch_format_per_label_kind():
    dataset = MultiTaskDataset(_samples(), Preprocessing(32), train=False)
    collate = Collate(dataset.preprocessing)
    batch = collate([dataset[("head_symphysis_multi", i)] for i in range(3)])
    assert batch["pixel_values"].shape == (3, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["task"] == "head_symphysis_multi"
    assert batch["targets"].dtype == torch.long and batch["targets"].shape == (3, 32, 32)
    assert set(batch["targets"].unique().tolist()) == {0, 2}
    assert batch["original_size"] == [(30, 40)] * 3 and len(batch["geometry"]) == 3
    classes = collate([dataset[("breast_3cls", i)] for i in range(5)])["targets"]
    assert classes.tolist() == [0, 1, 2, 0, 1] and classes.dtype == torch.long
    boxes = collate([dataset[("thyroid_nodule_det", i)] for i in range(2)])
    assert isinstance(boxes["targets"], list) and boxes["targets"][0].shape == (1, 4)
    # letterbox 30×40 -> 32×32: scale 0.8, pad_y 4; boxes are in model-input pixels
    assert torch.allclose(boxes["targets"][0], torch.tensor([[3.2, 8.8, 16.0, 24.8]]))
    points = collate([dataset[("IUGC", i)] for i in range(2)])["targets"]
    assert points.shape == (2, 3, 2) and points.dtype == torch.float32
    assert torch.allclose(points[0, 2], torch.tensor([31.2, 27.2]))
    values = collate([dataset[("fetal_head_circumference", i)] for i in range(2)])["targets"]
    assert values.tolist() == [100.0, 101.0] and values.dtype == torch.float32


def test_pixel_values_are_normalised_with_the_given_statistics():
    sample = Sample(np.full((8, 8), 255, np.uint8), "breast_3cls", 0)
    dataset = MultiTaskDataset({"breast_3cls": [sample]}, Preprocessing(8), train=False)
    batch = Collate(Preprocessing(8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0)))([dataset[("breast_3cls", 0)]])
    assert batch["pixel_values"][0, :, 0, 0].tolist() == [2.0, 1.0, 0.5]
    imagenet = Collate(dataset.preprocessing)([dataset[("breast_3cls", 0)]])["pixel_values"][0, :, 0, 0]
    assert torch.allclose(imagenet, (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD))


def test_backbone_normalization_reads_timm_pretrained_config():
    mean, std = backbone_normalization("vit_small_patch16_dinov3.lvd1689m")
    assert mean == pytest.approx(IMAGENET_MEAN) and std == pytest.approx(IMAGENET_STD)
    assert backbone_normalization("vit_base_patch16_clip_224.openai")[0] == pytest.approx(
        (0.48145466, 0.4578275, 0.40821073))
    assert backbone_normalization("no_such_model") == (IMAGENET_MEAN, IMAGENET_STD)


def test_mixed_tasks_or_sizes_in_a_batch_are_errors():
    dataset = MultiTaskDataset(_samples(), Preprocessing(16), train=False)
    with pytest.raises(DataError, match="a batch must hold one task"):
        Collate(dataset.preprocessing)([dataset[("breast_3cls", 0)], dataset[("IUGC", 0)]])
    big = Sample(gray(20, 20), "breast_3cls", 0)
    with pytest.raises(DataError, match="images of different sizes"):
        Collate(dataset.preprocessing)([dataset[("breast_3cls", 0)], (big, None)])


def test_dataloader_end_to_end_with_the_task_sampler():
    dataset = MultiTaskDataset(_samples(), Preprocessing(24), train=True)
    sampler = TaskSampler(dataset.task_sizes, batch_size=2, alpha=0.5, seed=0)
    batches = list(build_dataloader(dataset, sampler))
    assert len(batches) == len(sampler)
    assert {b["task"] for b in batches} == set(_samples())
    assert all(b["pixel_values"].shape[1:] == (3, 24, 24) for b in batches)


def test_augmentation_seeds_make_a_resumed_run_identical():
    dataset = MultiTaskDataset(_samples(), Preprocessing(24), train=True)
    first = TaskBatchSampler(TaskSampler(dataset.task_sizes, batch_size=2, seed=4))
    keys = list(first)
    assert all(isinstance(k, SampleKey) and k.seed is not None for batch in keys for k in batch)
    again = list(TaskBatchSampler(TaskSampler(dataset.task_sizes, batch_size=2, seed=4)))
    assert keys == again
    a, b = dataset[keys[0][0]][0], dataset[again[0][0]][0]
    assert np.array_equal(a.image, b.image)


def test_flat_and_lazy_inputs_are_grouped_by_task_without_decoding():
    samples = SampleCollection([s for group in _samples().values() for s in group])
    dataset = MultiTaskDataset(samples, Preprocessing(16), train=False)
    assert dataset.task_sizes == {"head_symphysis_multi": 3, "breast_3cls": 5, "thyroid_nodule_det": 2, "IUGC": 2,
                                  "fetal_head_circumference": 2}
    assert dataset[("breast_3cls", 4)][0].label == 1
    with pytest.raises(DataError, match="empty dataset for task 'IUGC'"):
        MultiTaskDataset({"IUGC": []}, Preprocessing(16), train=False)
