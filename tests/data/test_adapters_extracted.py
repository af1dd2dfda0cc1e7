"""PSFHS, POCUS, MMOTU and DDTI (the datasets get_public.sh extracts) on tiny copies of their layouts."""

import numpy as np
import pytest
from PIL import Image

from m2dino.data import DataError, MissingFileError
from m2dino.data.adapters import load_dataset
from m2dino.data.adapters.mha import read_mha

from .helpers import gray, rgb, write_png
from .layouts_public import (
    DDTI_CROPS,
    MMOTU_COLOURS,
    MMOTU_IMAGES,
    PSFHS_IDS,
    mmotu_annotation,
    psfhs_label,
    write_ddti,
    write_mha,
    write_mmotu,
    write_pocus,
    write_psfhs,
)


def by_name(collection):
    return {(s.meta["name"], s.task): s for s in collection}


# --- MetaImage reader ----------------------------------------------------------------------------

def test_read_mha_raw_and_compressed_in_simpleitk_axis_order(tmp_path):
    volume = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(read_mha(write_mha(tmp_path / "a.mha", volume)), volume)
    assert np.array_equal(read_mha(write_mha(tmp_path / "b.mha", volume, compressed=True)), volume)
    (tmp_path / "c.mha").write_bytes((tmp_path / "a.mha").read_bytes()[:-1])
    with pytest.raises(DataError, match=r"c.mha: 23 data bytes; expected 24 for DimSize \[4, 3, 2\] of MET_UCHAR"):
        read_mha(tmp_path / "c.mha")
    (tmp_path / "d.mha").write_bytes(b"NDims = 2\nElementDataFile = d.raw\n")
    with pytest.raises(DataError, match="d.mha: ElementDataFile = d.raw; only LOCAL"):
        read_mha(tmp_path / "d.mha")
    (tmp_path / "e.mha").write_bytes(b"\x89PNG\r\n garbage")
    with pytest.raises(DataError, match="e.mha: not a MetaImage file"):
        read_mha(tmp_path / "e.mha")
    with pytest.raises(MissingFileError, match="MHA file not found"):
        read_mha(tmp_path / "none.mha")


# --- PSFHS ---------------------------------------------------------------------------------------

def test_psfhs_one_gray_slice_and_the_three_class_label_map(tmp_path):
    splits = load_dataset("psfhs", write_psfhs(tmp_path), fractions={"train": 0.6, "val": 0.2, "test": 0.2})
    assert {split: len(items) for split, items in splits.items()} == {"train": 3, "val": 1, "test": 1}
    names = sorted(s.meta["name"] for items in splits.values() for s in items.items)
    assert names == PSFHS_IDS
    samples = {s.meta["name"]: s for items in splits.values() for s in items}
    first = samples["03745"]  # the zlib-compressed one
    assert first.task == "head_symphysis_multi" and first.image.shape == (32, 40, 3)
    assert np.array_equal(first.image[..., 0], gray(32, 40, seed=1))
    assert np.array_equal(first.label, psfhs_label(32, 40, 1)) and set(np.unique(first.label)) == {0, 1, 2}


def test_psfhs_errors(tmp_path):
    root = write_psfhs(tmp_path)
    slices = np.stack([gray(32, 40, 0), gray(32, 40, 0), gray(32, 40, 9)])
    write_mha(root / "image_mha" / "03744.mha", slices)
    item = [i for i in load_dataset("psfhs", root, fractions={"train": 1})["train"].items if i.meta["name"] == "03744"]
    with pytest.raises(DataError, match="03744.mha: its 3 slices differ; expected one gray image"):
        item[0].load()
    write_mha(root / "image_mha" / "03744.mha", np.stack([gray(30, 40)] * 3))
    with pytest.raises(DataError, match=r"label_mha/03744.mha: label map is 32×40 but image .*03744.mha is 30×40"):
        item[0].load()
    write_mha(root / "label_mha" / "03744.mha", np.full((30, 40), 3))
    with pytest.raises(DataError, match=r"label_mha/03744.mha: .*mask values \[3\] out of range"):
        item[0].load()
    (root / "label_mha" / "03746.mha").unlink()
    with pytest.raises(DataError, match=r"image_mha: 1 file\(s\) without a partner in .*label_mha \(e.g. 03746.mha\)"):
        load_dataset("psfhs", root)


# --- POCUS ---------------------------------------------------------------------------------------

def test_pocus_follows_the_published_folds_by_video(tmp_path):
    splits = load_dataset("pocus", write_pocus(tmp_path))
    names = {split: sorted(i.meta["name"] for i in items.items) for split, items in splits.items()}
    assert names == {"test": ["Cov-Atlas+(44).gif_frame0", "Cov-Atlas+(44).gif_frame12", "Cov-Atlas+(44).gif_frame3"],
                     "val": ["Pneu-grep-bacterial.mp4_frame0", "Pneu-grep-bacterial.mp4_frame6"],
                     "train": ["Cov_Oliviera_2020_Fig5A", "Pneu_emdocs_1", "Reg-Grep-Normal.mp4_frame0",
                               "Reg_Avi_normal-A-lines"]}
    test = splits["test"].materialize()
    assert {s.meta["video"] for s in test} == {"Cov-Atlas+(44).gif"} and {s.label for s in test} == {0}
    assert {s.meta["license"] for s in test} == {"CC BY-NC 4.0"}
    train = by_name(splits["train"])
    assert [train[n, "lung_disease_3cls"].label for n in ("Cov_Oliviera_2020_Fig5A", "Pneu_emdocs_1",
                                                          "Reg_Avi_normal-A-lines")] == [0, 1, 2]
    assert train["Reg_Avi_normal-A-lines", "lung_disease_3cls"].meta["license"] == "unknown"
    rgba = train["Pneu_emdocs_1", "lung_disease_3cls"]  # an opaque RGBA PNG: alpha dropped
    assert rgba.image.shape == (24, 28, 3) and np.array_equal(rgba.image, rgb(24, 28, 10 + 2))
    other = load_dataset("pocus", tmp_path / "data", test_fold=2, val_fold=None)  # the data folder works too
    assert set(other) == {"train", "test"} and len(other["test"]) == 2 and len(other["train"]) == 7


def test_pocus_errors(tmp_path):
    root = write_pocus(tmp_path) / "data"
    png = root / "image_dataset" / "pneumonia" / "Pneu_emdocs_1.png"
    Image.fromarray(np.zeros((24, 28, 4), np.uint8)).save(png)
    item = next(i for i in load_dataset("pocus", tmp_path)["train"].items if i.meta["name"] == "Pneu_emdocs_1")
    with pytest.raises(DataError, match="Pneu_emdocs_1.png: RGBA image with transparent pixels"):
        item.load()
    folds = root / "cross_validation"
    (folds / "split3" / "covid").mkdir()
    (folds / "split0" / "covid" / "Cov-Atlas+(44).gif_frame3.jpg").rename(
        folds / "split3" / "covid" / "Cov-Atlas+(44).gif_frame3.jpg")
    with pytest.raises(DataError, match=r"video 'Cov-Atlas\+\(44\).gif' is in fold 0 .* and fold 3 .*expected whole"):
        load_dataset("pocus", tmp_path)
    (folds / "split3" / "covid" / "Cov-Atlas+(44).gif_frame3.jpg").unlink()
    with pytest.raises(DataError, match=r"covid/Cov-Atlas\+\(44\).gif_frame3.jpg: in no fold"):
        load_dataset("pocus", tmp_path)
    with pytest.raises(DataError, match="test_fold=7, val_fold=1; expected fold numbers among"):
        load_dataset("pocus", tmp_path, test_fold=7)


# --- MMOTU ---------------------------------------------------------------------------------------

def test_mmotu_official_split_colour_masks_and_categories(tmp_path):
    splits = load_dataset("mmotu", write_mmotu(tmp_path), val_fraction=0.5)
    names = {split: sorted({i.meta["name"] for i in items.items}) for split, items in splits.items()}
    assert names["test"] == ["12", "1426", "659"]  # the official "validation" part
    assert sorted(names["train"] + names["val"]) == ["10", "11", "232", "233", "658"]
    assert len(names["val"]) == 2  # half of each category's train images, rounded per category: 1 + 0 + 1
    samples = {**by_name(splits["train"]), **by_name(splits["val"]), **by_name(splits["test"])}
    assert len(samples) == 2 * 8
    for category, images in MMOTU_IMAGES.items():
        for number, _, *box in images:
            mask = samples[str(number), "ovary_tumor"].label
            expected = mmotu_annotation(20, 24, tuple(box), MMOTU_COLOURS[category]).any(-1)
            assert np.array_equal(mask, expected)
    assert [samples[n, "ovary_tumor_cls"].label for n in ("10", "232", "658", "1426")] == [0, 2, 5, 7]
    without = load_dataset("mmotu", tmp_path, normal_in_segmentation=False)
    assert sum(t == "ovary_tumor" for split in without.values() for t in split.tasks()) == 8 - 2


def test_mmotu_errors(tmp_path):
    root = write_mmotu(tmp_path)
    write_png(root / "Teratoma" / "annotations" / "232.PNG", mmotu_annotation(20, 24, (1, 1, 5, 5), (64, 0, 0)))
    item = next(i for split in load_dataset("mmotu", root).values() for i in split.items
                if i.meta["name"] == "232" and i.task == "ovary_tumor")
    with pytest.raises(DataError, match=r"232.PNG: colour\(s\) \[\(64, 0, 0\)\] in a Teratoma annotation; expected "
                                        r"black and \(0, 0, 64\) only"):
        item.load()
    write_png(root / "Teratoma" / "annotations" / "233.PNG", np.zeros((8, 8, 3), np.uint8))  # as Teratoma 598
    with pytest.warns(UserWarning,
                      match=r"233.PNG: annotation is 8×8 but image .*233.JPG is 20×24 \(H×W\); image left"):
        splits = load_dataset("mmotu", root)
    assert "233" not in {i.meta["name"] for split in splits.values() for i in split.items}
    (root / "Teratoma" / "images" / "233.JPG").unlink()
    with pytest.raises(MissingFileError, match=r"OTU_2D_8-layers.json, entry \d+: file not found: .*233.JPG"):
        load_dataset("mmotu", root)


# --- DDTI ----------------------------------------------------------------------------------------

def test_ddti_tasks_tirads_and_split_by_case(tmp_path):
    splits = load_dataset("ddti", write_ddti(tmp_path), fractions={"train": 1})
    samples = by_name(splits["train"])
    assert len(splits["train"]) == 6 * 2 + 4  # 6 crops × (mask + box), 4 crops with a TI-RADS category
    assert ("102_1", "thyroid_tirads_cls") not in samples
    assert [samples[n, "thyroid_tirads_cls"].label for n in ("100_1(1)", "101_1", "139_1")] == [2, 5, 0]
    for name, (_, (x0, y0, x1, y1)) in DDTI_CROPS.items():
        assert samples[name, "thyroid_nodule"].label.sum() == (x1 - x0) * (y1 - y0)
        assert np.array_equal(samples[name, "thyroid_nodule_det"].label, [[x0, y0, x1, y1]])
    assert samples["100_1(2)", "thyroid_nodule"].meta["patient"] == "100"
    for seed in range(5):  # the two crops of case 100 (and of 102) always land together
        split = {i.meta["name"]: s for s, items in load_dataset("ddti", tmp_path, seed=seed).items()
                 for i in items.items}
        assert split["100_1(1)"] == split["100_1(2)"] and split["102_1"] == split["102_2"]


def test_ddti_errors(tmp_path):
    root = write_ddti(tmp_path)
    write_png(root / "cropped" / "200_1.png", gray(24, 24))
    with pytest.raises(DataError, match=r"200_1.png: no row '200_1' in .*diagnosis.csv"):
        load_dataset("ddti", root)
    with (root / "diagnosis.csv").open("a") as handle:
        handle.write("200_1,6,1\r\n")
    with pytest.raises(MissingFileError, match=r"200_1.png: mask file not found: .*mask/200_1.gif"):
        load_dataset("ddti", root)
    mask = np.zeros((24, 24), np.uint8)
    mask[3:5, 3:5] = 255
    write_png(root / "mask" / "200_1.gif", mask)
    with pytest.raises(DataError, match=r"diagnosis.csv: 200_1: TI-RADS '6'; expected one of 2, 3, 4a, 4b, 4c, 5"):
        load_dataset("ddti", root)
    write_png(root / "mask" / "200_1.gif", np.zeros((24, 24), np.uint8))  # as 7 published crops: left out
    with pytest.warns(UserWarning, match=r"200_1.gif: empty nodule mask; crop 200_1.png left out"):
        splits = load_dataset("ddti", root)
    assert "200_1" not in {i.meta["name"] for split in splits.values() for i in split.items}
