"""Augmentation on the training device (m2dino.data.device_augment): the same geometry as the
numpy/PIL worker path, the same parameter draws, and batches that depend only on their seeds."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from m2dino.data import DataError, Sample
from m2dino.data.device_augment import (
    BatchAffine,
    augment_batch,
    blur_images,
    speckle_noise,
    warp_boxes,
    warp_images,
    warp_keypoints,
    warp_masks,
)
from m2dino.data.loading import LoaderConfig
from m2dino.data.torch_dataset import Collate, MultiTaskDataset
from m2dino.data.transforms import AugmentConfig, RandomAffine, apply_affine
from m2dino.image import Preprocessing
from m2dino.tasks import get_task

from .helpers import MOVING_TASKS, assert_same_batches, augmented_batches, gray, write_moving_root

CPU = torch.device("cpu")


def _affine(matrix: np.ndarray, size: tuple[int, int]) -> BatchAffine:
    return BatchAffine.create(torch.from_numpy(np.asarray(matrix, np.float64))[None], size, CPU)


def _device_warp(task: str, label, matrix: np.ndarray, size: tuple[int, int]):
    """``label`` (numpy, the kind's canonical form) through the device path's warp of its kind."""
    kind, affine = get_task(task).label_kind, _affine(matrix, size)
    if kind.name == "mask":
        return warp_masks(torch.from_numpy(label).long()[None], affine)[0].numpy()
    if kind.name == "boxes":
        return warp_boxes(kind, [torch.from_numpy(label).float()], affine)[0].numpy()
    return warp_keypoints(kind, torch.from_numpy(label).float()[None], affine)[0].numpy()


def _flip(width: int) -> np.ndarray:
    matrix = np.diag([-1.0, 1.0, 1.0])
    matrix[0, 2] = width
    return matrix


QUARTER = np.array([[0.0, -1.0, 8.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # 90° about the centre of 8×8
DOUBLE = np.array([[2.0, 0.0, -4.0], [0.0, 2.0, -4.0], [0.0, 0.0, 1.0]])  # ×2 about the centre of 8×8

MASK_8 = np.zeros((8, 8), np.uint8)
MASK_8[2:4, 3:6] = 1
MASK_8[5, 2] = 2
# label kind, task, label, matrix, image size, hand-computed result
CASES = {
    "flip-mask": ("cardiac_multi", np.pad(np.ones((3, 3), np.uint8), ((2, 15), (1, 26))), _flip(30), (20, 30),
                  np.pad(np.ones((3, 3), np.uint8), ((2, 15), (26, 1)))),
    "flip-box": ("thyroid_nodule_det", np.array([[1.0, 2, 4, 5]]), _flip(30), (20, 30), [[26, 2, 29, 5]]),
    "flip-points": ("IUGC", np.array([[1.0, 2], [4, 5], [7, 8]]), _flip(30), (20, 30), [[29, 2], [26, 5], [23, 8]]),
    "flip-interchangeable": ("FUGC", np.array([[1.0, 2], [4, 5]]), _flip(30), (20, 30), [[26, 5], [29, 2]]),
    "quarter-mask": ("cardiac_multi", MASK_8, QUARTER, (8, 8), np.rot90(MASK_8, -1)),
    "quarter-box": ("thyroid_nodule_det", np.array([[1.0, 2, 3, 6]]), QUARTER, (8, 8), [[2, 1, 6, 3]]),
    "quarter-points": ("IUGC", np.array([[1.0, 2], [4, 5], [7, 0.5]]), QUARTER, (8, 8),
                       [[6, 1], [3, 4], [7.5, 7]]),
    "quarter-interchangeable": ("fetal_head_axis", np.array([[1.0, 2], [4, 9]]), QUARTER, (8, 8),
                                [[-1, 4], [6, 1]]),
    "double-mask": ("cardiac_multi", MASK_8, DOUBLE, (8, 8), np.kron(MASK_8[2:6, 2:6], np.ones((2, 2), np.uint8))),
    "double-box": ("thyroid_nodule_det", np.array([[3.0, 3, 5, 4]]), DOUBLE, (8, 8), [[2, 2, 6, 4]]),
    "double-pushes-a-box-out": ("thyroid_nodule_det", np.array([[0.0, 0, 1, 1]]), DOUBLE, (8, 8), np.zeros((0, 4))),
    "double-points": ("IUGC", np.array([[3.0, 5], [4, 4], [0.5, 8]]), DOUBLE, (8, 8), [[2, 6], [4, 4], [-3, 12]]),
}


@pytest.mark.parametrize("case", CASES)
def test_flip_quarter_turn_and_scale_move_each_label_kind_as_computed_by_hand_and_as_the_numpy_path(case):
    task, label, matrix, size, expected = CASES[case]
    expected = np.asarray(expected)
    device = _device_warp(task, label, matrix, size)
    numpy_path = apply_affine(Sample(gray(*size), task, label), matrix).label
    if get_task(task).label_kind.name == "mask":
        assert np.array_equal(device, expected) and np.array_equal(numpy_path, expected)
    else:
        assert device.shape == numpy_path.shape == expected.shape
        assert np.abs(device - expected).max(initial=0) <= 1e-4
        assert np.abs(numpy_path - expected).max(initial=0) <= 1e-9


def test_flip_and_quarter_turn_move_the_image_exactly_and_scale_as_pil_does():
    image = gray(8, 8)
    for matrix, expected in ((_flip(8), image[:, ::-1]), (QUARTER, np.rot90(image, -1))):
        moved = warp_images(torch.from_numpy(image).float()[None, None], _affine(matrix, (8, 8)))[0, 0]
        assert np.array_equal(moved.numpy(), expected)
        assert np.array_equal(apply_affine(Sample(image, "cardiac_multi", MASK_8), matrix).image[..., 0], expected)
    moved = warp_images(torch.from_numpy(image).float()[None, None], _affine(DOUBLE, (8, 8)))[0, 0].numpy()
    pil = apply_affine(Sample(image, "cardiac_multi", MASK_8), DOUBLE).image[..., 0].astype(float)
    # Pixel (0, 0)'s centre comes from (2.25, 2.25): a quarter of the way between four input centres.
    corner = image[1:3, 1:3].astype(float)
    assert moved[0, 0] == pytest.approx(np.array([0.25, 0.75]) @ corner @ np.array([0.25, 0.75]), abs=1e-4)
    assert ((moved - pil) >= -1e-4).all() and ((moved - pil) < 1 + 1e-4).all()  # PIL truncates to uint8


def test_a_batch_of_random_maps_moves_images_masks_boxes_and_points_as_the_numpy_path():
    height, width, count = 37, 53, 20
    rng = np.random.default_rng(0)
    image, mask = gray(height, width), rng.integers(0, 4, (height, width)).astype(np.uint8)
    boxes = np.array([[3.5, 4.25, 20.0, 30.0], [40.0, 2.0, 52.0, 9.5], [0.0, 0.0, 53.0, 37.0], [52.5, 0, 53, 0.5]])
    points = {"FUGC": rng.uniform(0, 1, (2, 2)) * [width, height], "IUGC": rng.uniform(0, 30, (3, 2))}
    matrices = np.stack([RandomAffine(0.5, 0.5, 30, (0.7, 1.3)).matrix((height, width), np.random.default_rng(seed))
                         for seed in range(count)])
    affine = BatchAffine.create(torch.from_numpy(matrices), (height, width), CPU)
    images = warp_images(torch.from_numpy(image).float()[None, None].expand(count, 1, -1, -1), affine)[:, 0].numpy()
    masks = warp_masks(torch.from_numpy(mask).long()[None].expand(count, -1, -1).contiguous(), affine).numpy()
    box_kind = get_task("thyroid_nodule_det").label_kind
    moved_boxes = warp_boxes(box_kind, [torch.from_numpy(boxes).float()] * count, affine)
    moved_points = {task: warp_keypoints(get_task(task).label_kind,
                                         torch.from_numpy(get_task(task).label_kind.canonical(p)).float()[None]
                                         .expand(count, -1, -1), affine).numpy() for task, p in points.items()}
    boundary_pixels = 0
    for i, matrix in enumerate(matrices):
        reference = apply_affine(Sample(image, "cardiac_multi", mask), matrix)
        difference = images[i] - reference.image[..., 0]
        assert difference.min() >= -1e-3 and difference.max() < 1 + 1e-3  # PIL truncates to uint8
        # PIL's NEAREST affine runs in 16.16 fixed point (errors ~1e-3 px); the device samples the exact
        # source point. They may differ only where that point lies that close to a pixel edge.
        rows, columns = np.nonzero(masks[i] != reference.label)
        source = (np.stack([columns + 0.5, rows + 0.5, np.ones(len(rows))], 1) @ np.linalg.inv(matrix).T)[:, :2]
        assert (np.abs(source - np.round(source)).min(axis=1, initial=1) < 2e-3).all()
        boundary_pixels += len(rows)
        expected = box_kind.warp(boxes, matrix, (height, width))
        assert moved_boxes[i].shape == expected.shape and np.abs(moved_boxes[i].numpy() - expected).max() <= 1e-4
        for task, p in points.items():
            kind = get_task(task).label_kind
            expected = kind.warp(kind.canonical(p), matrix, (height, width))
            assert np.abs(moved_points[task][i] - expected).max() <= 1e-4
    assert boundary_pixels < 0.001 * count * height * width
    assert len({len(b) for b in moved_boxes}) > 1  # some maps pushed a box out, others did not


def _dataset(task: str, label, augment: AugmentConfig, augment_on: str, size: int = 32) -> MultiTaskDataset:
    return MultiTaskDataset({task: [Sample(gray(40, 48, 1), task, label, source=f"{task}.png")]},
                            Preprocessing(size), train=True, augment=augment, augment_on=augment_on)


def _pixels_255(pixel_values: torch.Tensor, preprocessing: Preprocessing) -> np.ndarray:
    mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1)
    return ((pixel_values * std + mean) * 255).numpy()


@pytest.mark.parametrize("task,label", [("fetal_head_det", [[5.0, 8, 30, 22]]), ("IUGC", [[4, 5], [20, 30], [40, 10]])])
def test_a_seed_draws_the_same_parameters_and_gives_the_same_sample_on_either_path(task, label):
    augment = AugmentConfig(speckle_sigma=0.0, photometric_p=1.0)  # geometry and gamma/gain: no noise field
    worker, device = _dataset(task, label, augment, "worker"), _dataset(task, label, augment, "device")
    pre = worker.preprocessing
    for seed in range(6):
        key = (task, 0, seed)
        (a, _), (b, _) = worker[key], device[key]
        assert np.array_equal(a.meta["augment_affine"], b.meta["augment_affine"])
        via_worker = Collate(pre)([worker[key]])
        via_device = Collate(pre, on_device=True)([device[key]])
        assert via_device["pixel_values"].dtype == torch.uint8 and "augment" not in via_device["meta"][0]
        pixels, targets = augment_batch(via_device, CPU, pre)
        gap = np.abs(_pixels_255(pixels, pre) - _pixels_255(via_worker["pixel_values"], pre))
        # Both truncate the warped image to integers; then only the worker path rounds (to uint8),
        # by at most half a level. A pixel whose float32 and float64 warps straddle an integer could
        # differ by more: allow one in a hundred.
        assert gap.mean() < 0.3 and (gap > 0.5 + 1e-3).mean() < 0.01
        expected = via_worker["targets"]
        expected = expected[0] if isinstance(expected, list) else expected
        targets = targets[0] if isinstance(targets, list) else targets
        assert targets.shape == expected.shape and (targets - expected).abs().max() <= 1e-4


def test_photometric_steps_on_the_device_keep_the_letterbox_padding_black_and_follow_the_seed():
    sample = Sample(np.full((20, 40), 120, np.uint8), "breast_2cls", 1)
    augment = AugmentConfig(rotate_deg=0, scale=(1, 1), hflip_p=0, vflip_p=0, photometric_p=1, blur_sigma=0.0)
    dataset = MultiTaskDataset({"breast_2cls": [sample]}, Preprocessing(40), train=True, augment=augment,
                               augment_on="device")
    collate = Collate(dataset.preprocessing, on_device=True)
    batch = collate([dataset[("breast_2cls", 0, 3)], dataset[("breast_2cls", 0, 4)]])
    assert batch["augment"]["speckle"].gt(0).all() and batch["augment"]["gain"].ne(1).all()
    first, _ = augment_batch(batch, CPU, dataset.preprocessing)
    again, _ = augment_batch(batch, CPU, dataset.preprocessing)
    assert torch.equal(first, again)
    pixels = _pixels_255(first, dataset.preprocessing)
    assert np.abs(pixels[:, :, :10]).max() < 1e-3 and pixels[:, :, 10:30].std() > 0
    assert not np.allclose(pixels[0], pixels[1])  # two seeds, two noise fields


def test_a_gray_batch_travels_as_one_channel_and_augments_as_its_three():
    augment = AugmentConfig(photometric_p=1.0, blur_sigma=1.0)
    dataset = _dataset("fetal_head_det", [[5.0, 8, 30, 22]], augment, "device")
    items = [dataset[("fetal_head_det", 0, seed)] for seed in (1, 2)]
    batch = Collate(dataset.preprocessing, on_device=True)(items)
    assert batch["pixel_values"].shape == (2, 32, 32, 1)
    colour = dict(batch, pixel_values=batch["pixel_values"].expand(-1, -1, -1, 3).contiguous())
    gray_pixels, gray_targets = augment_batch(batch, CPU, dataset.preprocessing)
    colour_pixels, colour_targets = augment_batch(colour, CPU, dataset.preprocessing)
    assert gray_pixels.shape == (2, 3, 32, 32) and torch.equal(gray_pixels, colour_pixels)
    assert all(torch.equal(a, b) for a, b in zip(gray_targets, colour_targets))
    rgb = Sample(np.dstack([gray(40, 48, 1)] * 2 + [gray(40, 48, 2)]), "fetal_head_det", [[5.0, 8, 30, 22]])
    dataset.samples["fetal_head_det"] = [rgb]
    assert Collate(dataset.preprocessing, on_device=True)([dataset[("fetal_head_det", 0, 1)]])[
        "pixel_values"].shape == (1, 32, 32, 3)


def test_speckle_noise_has_mean_one_and_the_drawn_std_and_repeats_for_a_seed():
    def noise(sigmas, seeds):
        return speckle_noise(torch.tensor(sigmas, dtype=torch.float64), torch.tensor(seeds), (256, 256), CPU)

    fields = noise([0.15, 0.0375, 0.0], [7, 7, 7])
    for field, sigma in zip(fields[:2], (0.15, 0.0375)):
        assert float(field.mean()) == pytest.approx(1.0, abs=0.003)
        assert float(field.std()) == pytest.approx(sigma, rel=0.03)
    assert torch.equal(fields[2], torch.ones_like(fields[2]))  # no speckle drawn: a factor of exactly 1
    assert torch.equal(fields[0], noise([0.15], [7])[0])  # a sample's noise depends on its seed only
    assert not torch.equal(fields[0], noise([0.15], [8])[0])


def test_blur_leaves_sigma_zero_alone_keeps_flat_images_and_matches_pil():
    image = np.zeros((24, 24), np.uint8)
    image[8:16, 6:18] = 200
    batch = torch.from_numpy(np.stack([image, image])).float()[:, None].expand(2, 3, 24, 24).contiguous()
    out = blur_images(batch, torch.tensor([0.0, 1.5], dtype=torch.float64))
    assert torch.equal(out[0], batch[0])
    flat = blur_images(torch.full((1, 3, 9, 9), 77.0), torch.tensor([1.0], dtype=torch.float64))
    assert torch.allclose(flat, torch.full_like(flat, 77.0))
    pil = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.5)), dtype=float)
    assert np.abs(out[1, 0].numpy() - pil).mean() < 1.5  # PIL approximates the Gaussian with box blurs


def test_collating_for_the_device_without_drawn_parameters_is_refused():
    dataset = MultiTaskDataset({"fetal_plane_cls": [Sample(gray(8, 8), "fetal_plane_cls", 1, source="a.png")]},
                               Preprocessing(8), train=True)
    with pytest.raises(DataError, match="a.png: no drawn augmentation to collate for the device"):
        Collate(dataset.preprocessing, on_device=True)([dataset[("fetal_plane_cls", 0, 1)]])
    with pytest.raises(ValueError, match="augment_on must be one of"):
        LoaderConfig(augment_on="gpu")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_moving_root(tmp_path_factory.mktemp("synthetic"))


@pytest.mark.parametrize("augment_on", ["device", "worker"])
def test_zero_and_two_workers_give_bit_identical_augmented_batches(root, augment_on):
    serial = augmented_batches(root, 0, augment_on)
    assert {task for task, _, _ in serial} & {"fetal_head", "fetal_head_det", "fetal_femur"}  # labels that move
    assert_same_batches(serial, augmented_batches(root, 2, augment_on))


def test_training_with_device_augmentation_resumes_exactly_with_two_workers(root, tmp_path):
    from m2dino.training import TrainConfig, Trainer
    from m2dino.training.data_sources import load_training_data
    from tests.training.test_engine import tiny_model, weights

    data = load_training_data(str(root), MOVING_TASKS, image_size=32)

    def config(out: Path) -> TrainConfig:
        return TrainConfig(output_dir=str(out), steps=4, batch_size=3, eval_every=1000, warmup_steps=2, log_every=1)

    def stop_at_2(trainer, step):
        if step == 2:
            trainer.request_stop()

    serial = tiny_model(MOVING_TASKS)
    Trainer(serial, data.train, data.val, config(tmp_path / "a"), progress=False,
            loading=LoaderConfig(num_workers=0, augment_on="device")).train()
    parallel = LoaderConfig(num_workers=2, augment_on="device")
    first = Trainer(tiny_model(MOVING_TASKS), data.train, data.val, config(tmp_path / "b"), step_callback=stop_at_2,
                    progress=False, loading=parallel).train()
    assert first.steps_done == 2
    resumed = tiny_model(MOVING_TASKS, seed=7)
    Trainer(resumed, data.train, data.val, config(tmp_path / "b"), resume="latest", progress=False,
            loading=parallel).train()
    for key, value in weights(serial).items():
        assert torch.equal(resumed.state_dict()[key], value), key
