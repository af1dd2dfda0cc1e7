import numpy as np
import pytest

from m2dino.data import DataError, MissingFileError
from m2dino.data.adapters import convert, load_dataset
from m2dino.data.ellipse import Ellipse

from .helpers import write_csv
from .layouts import HC18_HEADS, HC18_SIZE, write_hc18


@pytest.fixture
def hc18(tmp_path):
    return write_hc18(tmp_path / "hc18")


def test_four_tasks_per_image_and_patient_level_splits(hc18):
    splits = load_dataset("hc18", hc18)
    assert list(splits) == ["train", "val", "test"]
    # 9 images of 8 patients: 80/10/10 -> 6 / 1 / 1 patients (largest remainder)
    patients = {split: {item.meta["patient"] for item in items.items} for split, items in splits.items()}
    assert [len(p) for p in patients.values()] == [6, 1, 1]
    assert sum(len(items) for items in splits.values()) == 4 * len(HC18_HEADS)
    for items in splits.values():
        assert items.tasks()[:4] == ["fetal_head", "fetal_head_det", "fetal_head_axis", "fetal_head_circumference"]
    split_of = {item.meta["name"]: split for split, items in splits.items() for item in items.items}
    assert split_of["010_HC"] == split_of["010_2HC"]


def test_labels_follow_the_drawn_ellipse(hc18):
    samples = {(s.meta["name"], s.task): s for items in load_dataset("hc18", hc18).values() for s in items}
    for i, (name, cx, cy, a, b, angle) in enumerate(HC18_HEADS):
        stem = name[:-4]
        truth = Ellipse(cx, cy, a, b, angle)
        head = samples[stem, "fetal_head"]
        assert head.image.shape == (*HC18_SIZE, 3) and head.meta["pixel_size_mm"] == 0.1
        area = truth.rasterize(*HC18_SIZE).sum()
        assert abs(int(head.label.sum()) - area) / area < 0.1  # the filled mask includes the contour
        ends = samples[stem, "fetal_head_axis"].label
        assert np.abs(ends - truth.major_axis_endpoints()).max() < 1.0
        assert samples[stem, "fetal_head_circumference"].label == round(100 + i * 10.5, 2)
        ys, xs = np.nonzero(head.label)
        assert np.array_equal(samples[stem, "fetal_head_det"].label,
                              [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]])
        assert head.meta["mask_from"] == ("ellipse fit" if stem == "014_HC" else "filled contour")


def test_open_contour_is_filled_from_the_ellipse_fit(hc18):
    samples = [s for items in load_dataset("hc18", hc18, tasks=("fetal_head",)).values() for s in items]
    head = next(s for s in samples if s.meta["name"] == "014_HC")
    assert head.label[HC18_SIZE[0] - 1].sum() > 0  # reaches the bottom edge
    assert head.label[44, 40] == 1


def test_split_seed_and_fractions_are_options(hc18):
    splits = load_dataset("hc18", hc18, seed=3, fractions={"train": 0.5, "test": 0.5})
    assert list(splits) == ["train", "test"]
    assert sum(len(v) for v in splits.values()) == 36
    patients = lambda seed: [{i.meta["patient"] for i in items.items} for items in  # noqa: E731
                             load_dataset("hc18", hc18, seed=seed).values()]
    assert patients(0) == patients(0) and patients(0) != patients(3)


def test_convert_writes_one_fmc_root_per_split(hc18, tmp_path):
    from m2dino.data import read_fmc_index

    roots = convert("hc18", hc18, tmp_path / "out", progress=False)
    assert sorted(roots) == ["test", "train", "val"]
    records = read_fmc_index(roots["train"])
    assert {r.task_type for r in records} == {"segmentation", "detection", "Regression"}
    scalar = [r for r in records if r.task_id == "fetal_head_circumference"]
    assert len(scalar) == len(records) // 4 and all(r.label >= 100 for r in scalar)


def test_layout_errors_name_the_file_and_row(hc18):
    (hc18 / "training_set" / "001_HC_Annotation.png").unlink()
    with pytest.raises(MissingFileError, match=r"training_set_pixel_size_and_HC.csv, row 2: file not found: "
                                               r".*001_HC_Annotation.png"):
        load_dataset("hc18", hc18)
    write_csv(hc18 / "training_set_pixel_size_and_HC.csv", ["filename", "pixel size(mm)"], [["000_HC.png", 0.1]])
    with pytest.raises(DataError, match=r"missing column\(s\) head circumference \(mm\)"):
        load_dataset("hc18", hc18)
    write_csv(hc18 / "training_set_pixel_size_and_HC.csv", ["filename", "pixel size(mm)", "head circumference (mm)"],
              [["head.png", 0.1, 50]])
    with pytest.raises(DataError, match=r"row 1: filename 'head.png'; expected NNN_HC.png"):
        load_dataset("hc18", hc18)
    write_csv(hc18 / "training_set_pixel_size_and_HC.csv", ["filename", "pixel size(mm)", "head circumference (mm)"],
              [["000_HC.png", -1, 50]])
    with pytest.raises(DataError, match=r"row 1: pixel size\(mm\) = '-1'; expected a positive number"):
        load_dataset("hc18", hc18)
    with pytest.raises(MissingFileError, match="expected the HC18 layout"):
        load_dataset("hc18", hc18 / "nowhere")


def test_hole_filling_equals_scipys_binary_fill_holes():
    """The one-pass fill gives scipy's pixels: nested rings, a ring cut by the border, a diagonal gap
    (4-connectivity: the inside leaks out through it), random blobs."""
    from scipy import ndimage

    from m2dino.data.adapters.hc18 import _fill_holes

    yy, xx = np.mgrid[:60, :80]
    ring = lambda cy, cx, r: np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.0  # noqa: E731
    diagonal_gap = np.zeros((60, 80), bool)
    diagonal_gap[10:20, 10], diagonal_gap[10:20, 20], diagonal_gap[10, 10:21] = True, True, True
    diagonal_gap[19, 10:20] = True
    diagonal_gap[19, 19], diagonal_gap[20, 20] = False, True  # corners touch only diagonally
    rng = np.random.default_rng(0)
    cases = [ring(30, 40, 20) | ring(30, 40, 8), ring(5, 40, 12), diagonal_gap,
             *(ndimage.binary_dilation(rng.random((60, 80)) < 0.05, iterations=2) for _ in range(5))]
    for contour in cases:
        assert np.array_equal(_fill_holes(contour), ndimage.binary_fill_holes(contour))
    assert _fill_holes(cases[0]).sum() > cases[0].sum()  # the fixtures do have holes
