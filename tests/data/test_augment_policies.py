"""The augmentation policies (m2dino.data.augment_policies, m2dino.data.policy_ops): each operation on
hand-made images, labels moving with the geometric ones, the task spec's rules, and batches that
depend only on their seeds."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from m2dino.data import DataError, Sample
from m2dino.data.augment_policies import (
    POLICY_IDENTITY,
    TRIVIAL_OPS,
    ULTRASOUND_OPS,
    TrivialAugment,
    UltrasoundArtifacts,
    allowed_ops,
)
from m2dino.data.device_augment import IDENTITY, SEEDS, augment_batch, collate_parameters, draw_parameters
from m2dino.data.policy_ops import (
    attenuation_and_shadow,
    bilateral,
    haze,
    level_histograms,
    level_maps,
    scan_region,
    sharpen,
)
from m2dino.data.torch_dataset import Collate, MultiTaskDataset, collate_targets
from m2dino.data.transforms import AugmentConfig, build_transforms
from m2dino.image import Preprocessing
from m2dino.tasks import get_task

from .helpers import assert_same_batches, augmented_batches, write_moving_root

CPU = torch.device("cpu")


def _drawn(batch: int = 1, matrix: np.ndarray | None = None, **values) -> dict[str, torch.Tensor]:
    """A batch's draws: identity everywhere but ``values`` (a number, or one per sample) and ``matrix``."""
    drawn = {key: torch.full((batch,), float(value), dtype=torch.float64) for key, value in IDENTITY.items()}
    drawn["matrix"] = torch.from_numpy(np.eye(3) if matrix is None else matrix).expand(batch, 3, 3).clone()
    for key in SEEDS:
        drawn[key] = torch.zeros(batch, dtype=torch.int64)
    for key, value in values.items():
        dtype = torch.int64 if key in SEEDS else torch.float64
        drawn[key] = torch.as_tensor(value, dtype=dtype).expand(batch).clone()
    return drawn


def _image(array: np.ndarray) -> torch.Tensor:
    """A float B×1×H×W batch of one image."""
    return torch.as_tensor(np.asarray(array, np.float32))[None, None]


# ------------------------------------------------------------------------------- level maps
def test_level_maps_apply_each_operation_as_computed_by_hand_and_keep_black_black():
    levels = np.arange(256, dtype=float)
    assert level_maps(_drawn(), None) is None  # nothing drawn: the default table, untouched
    halved = level_maps(_drawn(brightness=0.5), None)[0].numpy()
    assert np.allclose(halved, levels * 0.5)
    posterized = level_maps(_drawn(posterize=4.0), None)[0].numpy()
    assert np.array_equal(posterized, (np.arange(256) & 0xF0).astype(float))
    solarized = level_maps(_drawn(solarize=128.0), None)[0].numpy()
    expected = np.where(levels >= 128, 255 - levels, levels)
    expected[0] = 0  # black stays black
    assert np.array_equal(solarized, expected)
    assert level_maps(_drawn(solarize=0.0), None)[0, 0] == 0 and level_maps(_drawn(solarize=0.0), None)[0, 1] == 254


def test_contrast_autocontrast_and_equalize_read_the_non_black_pixels_only():
    image = np.zeros((4, 10))
    image[:, 2:6], image[:, 6:] = 50, 100  # 16 pixels at 50, 16 at 100, 8 black ones left out
    histograms = level_histograms(_image(image))
    assert histograms[0, [0, 50, 100]].tolist() == [8, 16, 16] and histograms.sum() == 40
    drawn = _drawn(3, contrast=[2.0, 1.0, 1.0], autocontrast=[0.0, 1.0, 0.0], equalize=[0.0, 0.0, 1.0])
    maps = level_maps(drawn, histograms.expand(3, -1))
    assert maps[0, 50] == 25 and maps[0, 100] == 125  # mean 75: 75 + 2 × (v - 75)
    assert maps[1, 50] == 0 and maps[1, 100] == 255 and maps[1, 75] == 127.5  # stretched from [50, 100]
    assert maps[2, 50] == 127.5 and maps[2, 99] == 127.5 and maps[2, 100] == 255  # half the tissue at or below 50
    assert (maps[:, 0] == 0).all()


def test_level_maps_join_the_gain_gamma_table_and_the_rest_of_the_batch_is_untouched():
    pre = Preprocessing(8)
    image = np.full((8, 8, 1), 200, np.uint8)
    image[0] = 0
    batch = {"pixel_values": torch.from_numpy(np.stack([image, image])), "task": "breast_2cls",
             "targets": torch.tensor([0, 1]), "augment": _drawn(2, brightness=[0.5, 1.0])}
    pixels, _ = augment_batch(batch, CPU, pre)
    values = pixels[:, 0] * pre.std[0] + pre.mean[0]
    assert torch.allclose(values[0, 1:], torch.full((7, 8), 100 / 255)) and (values[0, 0].abs() < 1e-6).all()
    assert torch.allclose(values[1, 1:], torch.full((7, 8), 200 / 255))


# ------------------------------------------------------------------------------ spatial ops
def test_sharpness_matches_pil_inside_and_keeps_the_border():
    array = np.random.default_rng(0).integers(20, 236, (12, 14)).astype(np.uint8)
    images = _image(array / 255.0).expand(3, 1, -1, -1).contiguous()
    factors = torch.tensor([1.0, 0.0, 1.8], dtype=torch.float64)
    out = sharpen(images, factors, scan_region(images))
    assert torch.equal(out[0], images[0])
    for index, factor in ((1, 0.0), (2, 1.8)):
        pil = np.asarray(ImageEnhance.Sharpness(Image.fromarray(array)).enhance(factor), dtype=float)
        gap = np.abs(out[index, 0].numpy() * 255 - pil)
        assert gap.max() < 1.5 and gap.mean() < 0.6  # PIL rounds the smoothed image, then the blend, to uint8
        assert torch.equal(out[index, 0, 0], images[index, 0, 0])  # the border as it was


def test_depth_attenuation_darkens_with_the_distance_from_the_probe():
    factors = attenuation_and_shadow(_drawn(2, attenuation=[2.0, 0.0]), (16, 16), CPU)
    assert attenuation_and_shadow(_drawn(2), (16, 16), CPU) is None  # no sample drew one: untouched
    centre = factors[0, 0, :, 8]
    assert (centre[1:] < centre[:-1]).all()  # monotonic with depth
    distance = np.hypot((8.5 / 16) - 0.5, 3.5 / 16)
    assert float(factors[0, 0, 3, 8]) == pytest.approx(np.exp(-2 * distance), rel=1e-6)
    assert torch.equal(factors[1], torch.ones_like(factors[1]))  # rate 0: a factor of exactly 1


def test_a_gaussian_shadow_darkens_only_around_its_centre():
    drawn = _drawn(shadow=0.6, shadow_x=0.25, shadow_y=0.25, shadow_sx=0.03, shadow_sy=0.03)
    factors = attenuation_and_shadow(drawn, (64, 64), CPU)[0, 0]
    ys, xs = np.mgrid[0:64, 0:64]
    far = np.hypot((xs + 0.5) / 64 - 0.25, (ys + 0.5) / 64 - 0.25) > 8 * 0.03
    assert torch.equal(factors[torch.from_numpy(far)], torch.ones(int(far.sum())))
    assert float(factors.min()) == pytest.approx(1 - 0.6 * np.exp(-2 * (0.5 / 64) ** 2 / (2 * 0.03**2)), rel=1e-5)
    assert tuple(np.argwhere(factors.numpy() == factors.numpy().min())[0]) in {(15, 15), (15, 16), (16, 15), (16, 16)}


def test_haze_adds_static_in_its_band_inside_the_scan_only_and_follows_its_seed():
    image = np.full((64, 64), 0.3, np.float32)
    image[:, :16] = 0  # black outside the scan
    image[30:33, 40:43] = 0  # an anechoic hole inside it
    images = _image(image).expand(3, 1, -1, -1).contiguous()
    drawn = _drawn(3, haze=[0.5, 0.5, 0.0], haze_radius=0.5, haze_sigma=0.05, haze_seed=[7, 8, 7])
    scan = scan_region(images)
    assert not scan[0, 0, :, :16].any() and scan[0, 0, 30:33, 40:43].all() and scan[0, 0, :, 16:].all()
    out = haze(images, drawn, scan)
    added = (out - images)[:, 0].numpy()
    ys, xs = np.mgrid[0:64, 0:64]
    outside_band = np.abs(np.hypot((xs + 0.5) / 64 - 0.5, (ys + 0.5) / 64) - 0.5) > 8 * 0.05
    assert (added >= 0).all() and added.max() <= 0.5 + 1e-6
    assert (added[:, outside_band] == 0).all() and (added[:, :, :16] == 0).all()
    in_band = (np.abs(np.hypot((xs + 0.5) / 64 - 0.5, (ys + 0.5) / 64) - 0.5) < 0.05) & (xs >= 16)
    assert added[0, in_band].mean() > 0.1 and added[0, 30:33, 40:43].max() > 0  # the hole gets haze too
    assert not np.array_equal(added[0], added[1]) and (added[2] == 0).all()  # seed 8 differs; amplitude 0: none
    assert torch.equal(haze(images, drawn, scan), out)


def test_speckle_reduction_is_a_bilateral_filter_and_sigma_zero_leaves_the_image():
    array = np.random.default_rng(1).uniform(0.1, 0.9, (7, 7)).astype(np.float32)
    images = _image(array).expand(2, 1, -1, -1).contiguous()
    spatial, color = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([0.3, 0.0], dtype=torch.float64)
    out = bilateral(images, spatial, color, scan_region(images))
    assert torch.equal(out[1], images[1])
    padded = np.pad(array, 2, mode="reflect")
    window = padded[1:6, 1:6]  # pixel (1, 1)'s 5×5 neighbourhood
    offsets = np.arange(-2, 3)
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None] ** 2) / 2) * np.exp(-(window - array[1, 1]) ** 2 / 0.18)
    assert float(out[0, 0, 1, 1]) == pytest.approx((weights * window).sum() / weights.sum(), rel=1e-5)
    flat = torch.full((1, 1, 9, 9), 0.4)
    assert torch.allclose(bilateral(flat, spatial[:1], color[:1], scan_region(flat)), flat)


# --------------------------------------------------------------------------------- drawing
def test_every_operation_at_magnitude_zero_is_the_identity():
    for name, (_, parameters) in TRIVIAL_OPS.items():
        drawn = parameters(0.0, (20, 30))
        assert np.array_equal(drawn.pop("matrix", np.eye(3)), np.eye(3)), name
        assert all(POLICY_IDENTITY[key] == value for key, value in drawn.items() if name not in (
            "autocontrast", "equalize")), name
    zero = UltrasoundArtifacts(p=1.0, strength=0.0).draw((20, 30), np.random.default_rng(0))
    assert zero["attenuation"] == zero["shadow"] == zero["bilateral_color"] == 0 and zero["haze"] == 0


def test_trivial_augment_draws_each_allowed_op_uniformly_and_scales_with_strength():
    rng = np.random.default_rng(0)
    policy = TrivialAugment(strength=2.0)
    draws = [policy.draw((40, 40), rng) for _ in range(2600)]
    rotations = [np.degrees(np.arctan2(d["matrix"][1, 0], d["matrix"][0, 0])) for d in draws
                 if "matrix" in d and np.isclose(d["matrix"][0, 1], -d["matrix"][1, 0]) and d["matrix"][0, 1] != 0]
    assert 150 < len(rotations) < 250 and max(np.abs(rotations)) > 55 and max(np.abs(rotations)) <= 60
    equalized = sum(d.get("equalize", 0) for d in draws)
    assert 150 < equalized < 250  # 13 ops: 200 each expected
    with pytest.raises(ValueError, match="TrivialAugment ops: expected names from"):
        TrivialAugment(["zoom"])


def test_a_task_gets_only_the_operations_its_spec_allows():
    only_rotate = dataclasses.replace(get_task("fetal_head"), augmentations=frozenset({"rotate"}))
    assert allowed_ops(only_rotate, tuple(TRIVIAL_OPS)) == ("identity", "rotate")
    assert allowed_ops(only_rotate, ULTRASOUND_OPS) == ()
    pre = Preprocessing(16)
    trivial = build_transforms(only_rotate, pre, True, AugmentConfig(policy="trivial")).steps
    assert len(trivial) == 1 and trivial[0].ops == ("identity", "rotate")  # no flip allowed either
    ultrasound = build_transforms(only_rotate, pre, True, AugmentConfig(policy="ultrasound")).steps
    assert [type(s).__name__ for s in ultrasound] == ["RandomAffine"]
    no_speckle = dataclasses.replace(get_task("fetal_head"), augmentations=frozenset({"hflip", "intensity"}))
    step = build_transforms(no_speckle, pre, True, AugmentConfig(policy="ultrasound", ultrasound_p=1.0)).steps[-1]
    assert step.ops == ("depth_attenuation", "gaussian_shadow", "haze") and "bilateral_color" not in step.draw(
        (16, 16), np.random.default_rng(0))
    # a task that forbids flips never gets one from TrivialAugment's flips or its operations
    steps = build_transforms("fetal_head_pos_cls", pre, True, AugmentConfig(policy="trivial")).steps
    rng = np.random.default_rng(1)
    assert all(np.linalg.det(steps[0].draw((16, 16), rng).get("matrix", np.eye(3))[:2, :2]) > 0 for _ in range(300))


def test_device_only_policies_refuse_the_worker_path_in_one_line():
    dataset = MultiTaskDataset({"fetal_head": [Sample(np.full((8, 8), 9, np.uint8), "fetal_head",
                                                      np.zeros((8, 8), np.uint8), source="a.png")]},
                               Preprocessing(8), train=True, augment=AugmentConfig(policy="trivial"),
                               augment_on="worker")
    with pytest.raises(DataError) as error:
        dataset[("fetal_head", 0, 1)]
    assert str(error.value) == ("a.png: augmentation policy 'trivial' runs on the training device only; "
                                "set augment_on='device' (data.augment_on in a run config)")


@pytest.mark.parametrize("changes, message", [
    ({"policy": "strong"}, "augment.policy='strong'; expected one of default, trivial, ultrasound"),
    ({"strength": -1.0}, "augment.strength must be >= 0, got -1.0"),
    ({"ultrasound_p": 2.0}, "augment.ultrasound_p must be a probability in [0, 1], got 2.0"),
    ({"gain": (1.2, 0.8)}, "augment.gain must be a range (low, high) with 0 < low <= high, got (1.2, 0.8)"),
])
def test_bad_augment_settings_are_one_line_naming_the_field(changes, message):
    with pytest.raises(ValueError) as error:
        AugmentConfig(**changes)
    assert str(error.value) == message


def test_the_default_policy_at_strength_one_is_todays_and_strength_widens_every_range():
    pre = Preprocessing(16)
    default = build_transforms("fetal_head", pre, True, AugmentConfig()).steps
    stronger = build_transforms("fetal_head", pre, True, AugmentConfig(strength=2.0)).steps
    affine, intensity, speckle = default
    assert (affine.rotate_deg, affine.scale, intensity.gain, speckle.sigma) == (10.0, (0.9, 1.1), (0.8, 1.25), 0.15)
    affine, intensity, speckle = stronger
    assert affine.rotate_deg == 20.0 and affine.scale == pytest.approx((0.81, 1.21))
    assert intensity.gamma == pytest.approx((0.64, 1.5625)) and speckle.sigma == pytest.approx(0.3)


# ------------------------------------------------------------------------- labels and images
SIZE = (40, 48)
RECT = (12, 10, 30, 22)  # x0, y0, x1, y1 of a bright rectangle


def _rectangle_batch(task: str, matrix: np.ndarray) -> dict:
    x0, y0, x1, y1 = RECT
    image = np.zeros((*SIZE, 1), np.uint8)
    image[y0:y1, x0:x1] = 200
    kind = get_task(task).label_kind
    if kind.name == "mask":
        label = (image[..., 0] > 0).astype(np.uint8)
    elif kind.name == "boxes":
        label = np.array([RECT], np.float64)
    else:
        label = kind.canonical(np.array([[x0 + 0.5, y0 + 0.5], [x1 - 0.5, y1 - 0.5], [21.0, 16.0]])[
            :get_task(task).num_classes])
    return {"pixel_values": torch.from_numpy(image[None]), "task": task, "label": label,
            "targets": collate_targets([Sample(image[..., 0], task, label)]), "augment": _drawn(1, matrix)}


GEOMETRIC = ["rotate", "shear_x", "shear_y", "translate_x", "translate_y"]


@pytest.mark.parametrize("op", GEOMETRIC)
@pytest.mark.parametrize("task", ["fetal_head", "thyroid_nodule_det", "IUGC", "FUGC"])
def test_a_geometric_trivial_op_moves_every_label_kind_exactly_as_the_image(op, task):
    matrix = TRIVIAL_OPS[op][1](-0.7, SIZE)["matrix"]
    batch = _rectangle_batch(task, matrix)
    pre = Preprocessing(SIZE[1])
    pixels, targets = augment_batch(batch, CPU, pre)
    image = (pixels[0, 0] * pre.std[0] + pre.mean[0]) * 255
    kind = get_task(task).label_kind
    expected = kind.warp(batch["label"], matrix, SIZE)  # the hand-made label through its kind
    if kind.name == "mask":
        mismatched = (targets[0].numpy() > 0) != (image.numpy() > 100)
        assert mismatched.sum() <= 4  # only where bilinear and nearest disagree at a corner
        assert np.abs(targets[0].numpy().astype(int) - expected).sum() <= 4  # PIL's fixed point at pixel edges
    elif kind.name == "boxes":
        assert np.abs(targets[0].numpy() - expected).max() < 1e-4
        corners = (np.array([[RECT[0], RECT[1], 1.0], [RECT[2], RECT[3], 1.0]]) @ matrix.T)[:, :2]
        if op.startswith("translate"):  # a translation keeps the box a box: its corners, exactly
            assert np.abs(targets[0].numpy()[0] - corners.ravel()).max() < 1e-4
    else:
        points = targets[0].numpy()
        assert np.abs(points - expected).max() < 1e-4
        if len(points) == 3:  # the rectangle's centre, moved, is still inside the moved rectangle
            assert image[int(points[2, 1]), int(points[2, 0])] > 199


def test_a_translation_moves_image_and_mask_by_whole_pixels_exactly():
    matrix = np.eye(3)
    matrix[0, 2] = 6.0  # what translate_x draws at magnitude 6 / (0.15 × 48)
    assert np.allclose(TRIVIAL_OPS["translate_x"][1](6 / (0.15 * 48), SIZE)["matrix"], matrix)
    batch = _rectangle_batch("fetal_head", matrix)
    pre = Preprocessing(SIZE[1])
    pixels, targets = augment_batch(batch, CPU, pre)
    image = ((pixels[0, 0] * pre.std[0] + pre.mean[0]) * 255).round()
    shifted = np.zeros(SIZE)
    shifted[10:22, 18:36] = 200
    assert np.array_equal(image.numpy(), shifted) and np.array_equal(targets[0].numpy(), shifted > 0)


@pytest.mark.parametrize("task", ["fetal_head", "thyroid_nodule_det", "FUGC"])
def test_trivial_policy_batches_move_labels_by_each_samples_recorded_map(task):
    label = {"fetal_head": np.pad(np.ones((10, 14), np.uint8), ((12, 18), (16, 18))),
             "thyroid_nodule_det": np.array([[10.0, 8, 30, 25]]), "FUGC": np.array([[12.0, 9], [33, 26]])}[task]
    source = Sample(np.random.default_rng(0).integers(1, 256, SIZE, dtype=np.uint8), task, label)
    pre = Preprocessing(SIZE[1])
    dataset = MultiTaskDataset({task: [source]}, pre, train=True, augment=AugmentConfig(policy="trivial"),
                               augment_on="device")
    items = [dataset[(task, 0, seed)] for seed in range(24)]
    _, targets = augment_batch(Collate(pre, on_device=True)(items), CPU, pre)
    kind = get_task(task).label_kind
    resized = items[0][0].label
    for (sample, _), moved in zip(items, targets):
        expected = kind.warp(resized, sample.meta["augment_affine"], sample.size)
        moved = moved.numpy()
        if kind.name == "mask":
            assert (moved != expected).mean() < 0.005
        else:
            assert moved.shape == expected.shape and np.abs(moved - expected).max(initial=0) < 1e-4


def test_zero_strength_policies_are_the_identity_of_their_kind():
    task, pre = "fetal_head", Preprocessing(32)
    source = Sample(np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8), task,
                    np.zeros((32, 32), np.uint8))

    def pixels(config: AugmentConfig) -> torch.Tensor:
        dataset = MultiTaskDataset({task: [source]}, pre, train=True, augment=config, augment_on="device")
        batch = Collate(pre, on_device=True)([dataset[(task, 0, seed)] for seed in range(6)])
        return augment_batch(batch, CPU, pre)[0]

    plain = pixels(AugmentConfig(strength=0.0, hflip_p=0.0))
    assert torch.allclose(plain, plain[:1].expand_as(plain))  # nothing moved, nothing changed
    assert torch.equal(pixels(AugmentConfig(policy="ultrasound", strength=0.0, hflip_p=0.0, ultrasound_p=1.0)), plain)
    # TrivialAugment's autocontrast and equalize have no magnitude (as in the paper): they still apply
    trivial = pixels(AugmentConfig(policy="trivial", strength=0.0, hflip_p=0.0))
    steps = build_transforms(task, pre, True, AugmentConfig(policy="trivial", strength=0.0, hflip_p=0.0)).steps
    unchanged = [not ({"autocontrast", "equalize"} & set(steps[0].draw((32, 32), np.random.default_rng(seed))))
                 for seed in range(6)]
    assert 0 < sum(unchanged) and all(torch.equal(trivial[i], plain[i]) for i in range(6) if unchanged[i])


# ------------------------------------------------------------------------------ determinism
@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return write_moving_root(tmp_path_factory.mktemp("synthetic"))


@pytest.mark.parametrize("policy", ["trivial", "ultrasound"])
def test_zero_and_two_workers_give_bit_identical_policy_batches(root, policy):
    augment = AugmentConfig(policy=policy, ultrasound_p=1.0)
    assert_same_batches(augmented_batches(root, 0, augment=augment, steps=4),
                        augmented_batches(root, 2, augment=augment, steps=4))


def test_collated_draws_hold_every_policy_parameter():
    steps = build_transforms("fetal_head", Preprocessing(16), True, AugmentConfig(policy="ultrasound")).steps
    draws = [draw_parameters(steps, (16, 16), np.random.default_rng(seed)) for seed in range(4)]
    collated = collate_parameters(draws)
    assert set(collated) == {"matrix", "noise_seed", "haze_seed", *IDENTITY}
    assert collated["haze_seed"].dtype == torch.int64 and collated["haze"].dtype == torch.float64
