import numpy as np
import pytest
from PIL import Image

from m2dino.data import DataError
from m2dino.data.adapters import load_dataset

from .helpers import gray, rgb, write_csv, write_png


def _segmentation_folder(root, mask_size=(24, 30)):
    """JPEG images and GIF (palette) masks, as some public datasets ship them."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, name in enumerate(["a", "b", "c"]):
        Image.fromarray(rgb(24, 30, i)).save(root / "images" / f"{name}.jpg")
        mask = np.zeros(mask_size, np.uint8)
        mask[2:10, 3:12] = 1 + i % 2
        Image.fromarray(mask).save(root / "masks" / f"{name}.gif")  # gray levels = class indices
    return root


def test_image_folder_with_gif_masks_matched_by_stem(tmp_path):
    root = _segmentation_folder(tmp_path / "thyroid")
    samples = load_dataset("folder", root, task="head_symphysis_multi")["train"]
    assert [s.meta["name"] for s in samples] == ["a", "b", "c"]
    assert [int(s.label.max()) for s in samples] == [1, 2, 1]
    assert samples[0].label[5, 5] == 1 and samples[0].meta["dataset"] == "thyroid"


def test_mask_size_mismatch_is_an_error_unless_resizing_is_asked_for(tmp_path):
    root = _segmentation_folder(tmp_path / "d", mask_size=(12, 15))
    with pytest.raises(DataError, match=r"a.gif: mask is 12×15 but image .*a.jpg is 24×30 \(H×W\); expected the same "
                                        r"size \(or pass resize_masks=True\)"):
        load_dataset("folder", root, task="head_symphysis_multi")
    resized = load_dataset("folder", root, task="head_symphysis_multi", resize_masks=True)["train"][0]
    assert resized.label.shape == (24, 30) and resized.label[4:20, 6:24].min() == 1


def test_binary_masks_and_unpaired_files(tmp_path):
    root = tmp_path / "d"
    write_png(root / "images" / "x.png", gray(10, 10))
    write_png(root / "masks" / "x.png", np.where(np.eye(10) > 0, 255, 0).astype(np.uint8))
    with pytest.raises(DataError, match=r"mask values \[255\] out of range"):
        load_dataset("folder", root, task="fetal_head")["train"][0]
    assert load_dataset("folder", root, task="fetal_head", binary_masks=True)["train"][0].label.sum() == 10
    write_png(root / "images" / "y.png", gray(10, 10))
    with pytest.raises(DataError, match=r"images: 1 file\(s\) without a partner of the same stem in .*masks"):
        load_dataset("folder", root, task="fetal_head")


def test_csv_labels_for_each_label_kind(tmp_path):
    root = tmp_path / "d"
    for name in ("p", "q"):
        write_png(root / "images" / f"{name}.png", gray(20, 20))
    write_csv(root / "labels.csv", ["image", "label", "split"], [["p.png", "malignant", "test"], ["q", 0, ""]])
    splits = load_dataset("folder", root, task="breast_2cls")
    assert [s.label for s in splits["test"]] == [1] and [s.label for s in splits["train"]] == [0]
    write_csv(root / "boxes.csv", ["image", "x_min", "y_min", "x_max", "y_max"],
              [["p", 1, 2, 3, 4], ["q", 0, 0, 5, 5.5]])
    boxes = load_dataset("folder", root, task="thyroid_nodule_det", labels="boxes.csv")["train"]
    assert np.array_equal(boxes[1].label, [[0, 0, 5, 5.5]])
    write_csv(root / "points.csv", ["image", "point_1_xy", "point_2_xy"], [["p", '"[1, 2]"', '"[3, 4]"'],
                                                                          ["q", '"[5, 6]"', '"[7, 8.5]"']])
    points = load_dataset("folder", root, task="FUGC", labels="points.csv", split="val")["val"]
    assert np.array_equal(points[1].label, [[5, 6], [7, 8.5]])
    write_csv(root / "values.csv", ["image", "value"], [["p", 12.5], ["q", 99]])
    assert [s.label for s in load_dataset("folder", root, task="fetal_head_circumference",
                                          labels="values.csv")["train"]] == [12.5, 99.0]


def test_csv_errors_name_the_row(tmp_path):
    root = tmp_path / "d"
    for name in ("p", "q"):
        write_png(root / "images" / f"{name}.png", gray(20, 20))
    write_csv(root / "labels.csv", ["image", "label"], [["p", 1]])
    with pytest.raises(DataError, match=r"labels.csv: no label for 1 image\(s\) \(e.g. q\); every image needs a row"):
        load_dataset("folder", root, task="breast_2cls")
    write_csv(root / "labels.csv", ["image", "label"], [["p", 1], ["q", 0], ["r", 1]])
    with pytest.raises(DataError, match=r"labels.csv, row 3: image 'r' not found in .*images"):
        load_dataset("folder", root, task="breast_2cls")
    write_csv(root / "labels.csv", ["image", "label"], [["p", 1], ["q", "cyst"]])
    with pytest.raises(DataError, match=r"labels.csv, row 2: task 'breast_2cls' \(class\): label = 'cyst'; expected an "
                                        r"integer class index 0..1"):
        load_dataset("folder", root, task="breast_2cls")
    write_csv(root / "labels.csv", ["image", "label"], [["p", 1], ["q", 2]])
    with pytest.raises(DataError, match=r"q.png: task 'breast_2cls' \(class\): class 2 out of range"):
        load_dataset("folder", root, task="breast_2cls")
    write_csv(root / "labels.csv", ["image", "klass"], [["p", 1]])
    with pytest.raises(DataError, match=r"labels.csv: missing column\(s\) label"):
        load_dataset("folder", root, task="breast_2cls")
    with pytest.raises(DataError, match=r"empty dataset \(no image files\)"):
        (tmp_path / "empty" / "images").mkdir(parents=True)
        load_dataset("folder", tmp_path / "empty", task="breast_2cls")
