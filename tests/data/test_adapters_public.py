"""African planes, USGRA and BUSI on tiny copies of their published layouts."""

import numpy as np
import pytest

from m2dino.data import DataError, MissingFileError
from m2dino.data.adapters import get_adapter, list_adapters, load_dataset

from .helpers import gray, write_csv, write_png
from .layouts import BUSI_IMAGES, busi_mask, palette_mask, usgra_mask, write_african_planes, write_busi, write_usgra


def test_registry_of_adapters():
    assert list_adapters() == ["hc18", "african_planes", "usgra", "busi", "psfhs", "pocus", "mmotu", "ddti", "folder"]
    with pytest.raises(DataError, match="unknown dataset adapter 'camus'; known: hc18, african_planes"):
        get_adapter("camus")


# --- African planes ------------------------------------------------------------------------------

def test_african_planes_keeps_the_published_split_and_the_country(tmp_path):
    splits = load_dataset("african_planes", write_african_planes(tmp_path))
    assert {split: len(items) for split, items in splits.items()} == {"train": 3, "test": 2}
    train = splits["train"].materialize()
    assert [s.label for s in train] == [2, 1, 0]  # femur, brain, abdomen in fetal_plane_cls's class order
    assert [s.meta["country"] for s in train] == ["Algeria", "Algeria", "Egypt"]
    assert [s.meta["patient"] for s in train] == ["Algeria:7", "Algeria:7", "Egypt:7"]
    assert train[0].image.shape == (30, 40, 3) and train[1].image.shape == (32, 36, 3)
    assert [s.label for s in splits["test"]] == [3, 0]


def test_african_planes_errors(tmp_path):
    root = write_african_planes(tmp_path)
    header = ["Patient_num", "Plane", "Train", "Center", "Image_name"]
    csv = root / "african_test" / "African_test.csv"
    write_csv(csv, header, [[53, "Fetal heart", 0, "Ghana", "patient053_GHA_plane3"]])
    with pytest.raises(DataError, match=r"African_test.csv, row 1: Plane 'Fetal heart'; expected one of Fetal abdomen"):
        load_dataset("african_planes", root)
    write_csv(csv, header, [[53, "Fetal thorax", 1, "Ghana", "patient053_GHA_plane3"]])
    with pytest.raises(DataError, match=r"row 1: Train = '1' in the test folder; expected '0'"):
        load_dataset("african_planes", root)
    write_csv(csv, header, [[53, "Fetal thorax", 0, "Ghana", "patient999_GHA_plane3"]])
    with pytest.raises(MissingFileError, match=r"row 1: image file not found: .*patient999_GHA_plane3.png"):
        load_dataset("african_planes", root)
    write_csv(csv, header, [])
    with pytest.raises(DataError, match="African_test.csv: empty dataset"):
        load_dataset("african_planes", root)


# --- USGRA ---------------------------------------------------------------------------------------

def test_usgra_pairs_images_and_palette_masks(tmp_path):
    splits = load_dataset("usgra", write_usgra(tmp_path))
    assert {split: len(items) for split, items in splits.items()} == {"train": 3, "test": 2}
    first = splits["train"][0]
    assert first.task == "nerve_vessel_seg" and first.meta["name"] == "0000"
    assert np.array_equal(first.label, usgra_mask(32, 40, 0))
    assert [s.meta["name"] for s in splits["test"]] == ["0009", "0017"]


def test_usgra_errors(tmp_path):
    root = write_usgra(tmp_path)
    palette_mask(np.full((32, 40), 3)).save(root / "masks" / "0001.png")
    with pytest.raises(DataError, match=r"masks/0001.png: .*mask values \[3\] out of range; expected class indices"):
        load_dataset("usgra", root)["train"][1]
    palette_mask(np.zeros((31, 40))).save(root / "masks" / "0001.png")
    with pytest.raises(DataError, match=r"0001.png: mask is 31×40 but image .*0001.png is 32×40"):
        load_dataset("usgra", root)
    (root / "masks" / "0001.png").unlink()
    with pytest.raises(DataError, match=r"images: 1 file\(s\) without a partner in .*masks \(e.g. 0001.png\)"):
        load_dataset("usgra", root)


# --- BUSI ----------------------------------------------------------------------------------------

def test_busi_tasks_union_of_masks_and_box(tmp_path):
    splits = load_dataset("busi", write_busi(tmp_path), fractions={"train": 1.0})
    samples = {(s.meta["name"], s.task): s for s in splits["train"]}
    assert len(splits["train"]) == 5 + 3 + 3  # 5 × breast_3cls, 3 lesion images × (seg + box)
    assert [samples[name, "breast_3cls"].label for name in ("normal (1)", "benign (1)", "malignant (1)")] == [0, 1, 2]
    union = samples["benign (2)", "breast_lesion"].label
    assert union.sum() == 4 * 4 + 5 * 7 and union[3, 3] == 1 and union[16, 21] == 1
    assert np.array_equal(samples["benign (2)", "breast_lesion_det"].label, [[2, 2, 25, 22]])
    assert np.array_equal(samples["malignant (1)", "breast_lesion_det"].label, [[5, 5, 15, 20]])
    assert ("normal (1)", "breast_lesion") not in samples and ("normal (1)", "breast_lesion_det") not in samples
    with_normals = load_dataset("busi", tmp_path, fractions={"train": 1.0}, normal_in_segmentation=True)["train"]
    normals = [s for s in with_normals if s.task == "breast_lesion" and s.meta["class_name"] == "normal"]
    assert len(normals) == 2 and all(s.label.sum() == 0 for s in normals)


def test_busi_default_split_is_stratified_and_deterministic(tmp_path):
    splits = load_dataset("busi", write_busi(tmp_path))
    names = {split: sorted({i.meta["name"] for i in items.items}) for split, items in splits.items()}
    assert sum(len(v) for v in names.values()) == sum(len(v) for v in BUSI_IMAGES.values())
    assert names == {split: sorted({i.meta["name"] for i in items.items})
                     for split, items in load_dataset("busi", tmp_path).items()}
    # the dataset folder itself is accepted too
    assert len(load_dataset("busi", tmp_path / "Dataset_BUSI_with_GT")["train"]) == len(splits["train"])


def test_busi_errors(tmp_path):
    root = write_busi(tmp_path) / "Dataset_BUSI_with_GT"
    write_png(root / "benign" / "benign (9)_mask.png", busi_mask(28, 32, (1, 1, 3, 3)))
    with pytest.raises(DataError, match=r"benign: mask\(s\) without an image: benign \(9\)_mask.png"):
        load_dataset("busi", tmp_path)
    (root / "benign" / "benign (9)_mask.png").rename(root / "benign" / "benign (9).png")
    with pytest.raises(DataError, match=r"benign: image\(s\) without a mask: benign \(9\).png"):
        load_dataset("busi", tmp_path)
    (root / "benign" / "benign (9).png").unlink()
    write_png(root / "malignant" / "malignant (1)_mask.png", busi_mask(28, 32, None))
    lesion = [s for s in load_dataset("busi", tmp_path, fractions={"train": 1})["train"].items
              if s.task == "breast_lesion" and s.meta["name"] == "malignant (1)"][0]
    with pytest.raises(DataError, match=r"malignant \(1\)_mask.png: empty lesion mask for a malignant image"):
        lesion.load()
    write_png(root / "malignant" / "malignant (1)_mask.png", gray(20, 20))
    with pytest.raises(DataError, match=r"mask is 20×20 but image .*malignant \(1\).png is 28×32"):
        lesion.load()


def test_converted_datasets_read_back_identical(tmp_path):
    from m2dino.data import read_fmc
    from m2dino.data.adapters import convert

    for name, write in (("usgra", write_usgra), ("busi", write_busi), ("african_planes", write_african_planes)):
        src = write(tmp_path / name)
        roots = convert(name, src, tmp_path / "fmc" / name, progress=False)
        for split, samples in load_dataset(name, src).items():
            if not len(samples):  # a split these few images leave empty is not written
                assert split not in roots
                continue
            key = lambda s: (s.task, s.meta["name"])  # noqa: E731
            back = sorted(read_fmc(roots[split]), key=key)
            for original, copy in zip(sorted(samples, key=key), back, strict=True):
                assert key(copy) == key(original) and np.array_equal(copy.image, original.image)
                assert np.array_equal(np.asarray(copy.label), np.asarray(original.label))
                assert copy.meta["split"] == split and copy.meta["dataset"] == name
