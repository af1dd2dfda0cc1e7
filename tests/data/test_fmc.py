import numpy as np
import pytest
from PIL import Image

from m2dino.data import DataError, MissingFileError, Sample, read_fmc, read_fmc_index, write_fmc
from m2dino.data.fmc import scan_fmc

from .helpers import gray, rgb, write_csv, write_png


def _samples() -> list[Sample]:
    mask = np.zeros((20, 30), np.uint8)
    mask[5:15, 4:20] = 1
    mask[8:10, 6:9] = 3
    return [
        Sample(gray(20, 30, 1), "cardiac_multi", mask, source="/data/a.png", meta={"patient": "p1"}),
        Sample(rgb(20, 30, 2), "breast_3cls", 2, source="/data/b.png"),
        Sample(rgb(16, 18, 3), "thyroid_nodule_det", [1.5, 2.25, 10.0, 12.125], source="/data/c.png"),
        Sample(rgb(16, 18, 4), "IUGC", [[0.1, 0.2], [3.3333333333, 4.0], [17.9, 15.5]], source="/data/d.png"),
        Sample(gray(16, 18, 5), "fetal_head_circumference", 171.25, source="/data/d.png"),
        Sample(gray(20, 30, 6), "cardiac_multi", np.zeros((20, 30), np.uint8), source="/other/a.png"),
    ]


def test_write_then_read_gives_the_same_samples(tmp_path):
    samples = _samples()
    written = write_fmc(samples, tmp_path, split_name="val")
    assert sorted(p.name for p in written) == ["val_IUGC.csv", "val_breast_3cls.csv", "val_cardiac_multi.csv",
                                               "val_fetal_head_circumference.csv", "val_thyroid_nodule_det.csv"]
    back = read_fmc(tmp_path)
    assert len(back) == len(samples)
    for task in {s.task for s in samples}:  # rows keep the input order within a task
        originals, restored = [s for s in samples if s.task == task], [s for s in back if s.task == task]
        for original, copy in zip(originals, restored, strict=True):
            assert np.array_equal(copy.image, original.image)
            assert np.array_equal(np.asarray(copy.label), np.asarray(original.label))
            assert copy.original_size == original.original_size
            assert {k: v for k, v in copy.meta.items() if k not in ("image_path", "csv_file", "csv_row")} \
                == original.meta
            assert copy.meta["image_path"].startswith("../") and copy.source.endswith(".png")


def test_same_name_from_two_sources_gets_distinct_files_and_shared_images_are_written_once(tmp_path):
    write_fmc(_samples(), tmp_path, split_name="train")
    records = read_fmc_index(tmp_path, tasks=["cardiac_multi"])
    assert [r.image_path for r in records] == ["../Segmentation/Four/cardiac_multi/train/IMAGES/a.png",
                                               "../Segmentation/Four/cardiac_multi/train/IMAGES/a_1.png"]
    regression = read_fmc_index(tmp_path, tasks=["IUGC", "fetal_head_circumference"])
    assert {r.image_path for r in regression} == {"../Regression/IUGC/train/IMAGES/d.png",
                                                  "../Regression/fetal_head_circumference/train/IMAGES/d.png"}


def test_index_fields_and_lazy_loading(tmp_path):
    write_fmc(_samples(), tmp_path)
    record = read_fmc_index(tmp_path, tasks=["thyroid_nodule_det"])[0]
    assert record.task_type == "detection" and record.num_classes == 1 and record.csv_row == 1
    assert record.csv_file.name == "train_thyroid_nodule_det.csv"
    assert record.image_file.is_file() and record.mask_path is None and record.image_size == (16, 18)
    assert np.array_equal(record.label, [1.5, 2.25, 10.0, 12.125])
    assert np.array_equal(record.to_sample().label, [[1.5, 2.25, 10.0, 12.125]])
    seg = read_fmc_index(tmp_path, tasks=["cardiac_multi"])[0]
    assert seg.task_type == "segmentation" and seg.label is None and seg.load_mask().max() == 3
    assert seg.load_image().shape == (20, 30, 3)
    lazy = read_fmc(tmp_path, tasks=["breast_3cls"], lazy=True)
    assert lazy.tasks() == ["breast_3cls"] and lazy[0].label == 2


def test_writing_over_an_existing_csv_needs_overwrite(tmp_path):
    write_fmc(_samples()[:2], tmp_path)
    with pytest.raises(DataError, match="train_cardiac_multi.csv exists; pass overwrite=True"):
        write_fmc(_samples()[:2], tmp_path)
    write_fmc(_samples()[:2], tmp_path, overwrite=True)


# --- bad input: every error names the CSV file (and row) and what was expected ---------------------

HEADER = ["task_id", "task_name", "num_classes", "image_path", "mask"]


def _root(tmp_path, rows, header=HEADER, name="labels.csv"):
    write_png(tmp_path / "Classification" / "x.png", gray(8, 8))
    write_csv(tmp_path / "csv_files" / name, header, rows)
    return tmp_path


def _row(**changes):
    row = {"task_id": "breast_3cls", "task_name": "classification", "num_classes": 3,
           "image_path": "../Classification/x.png", "mask": 1}
    row.update(changes)
    return [row[c] for c in HEADER]


@pytest.mark.parametrize("changes, message", [
    ({"image_path": "../Classification/missing.png"}, r"labels.csv, row 2: image file not found: .*missing.png"),
    ({"mask": 3}, r"labels.csv, row 2: task 'breast_3cls' \(class\): class 3 out of range; expected 0..2"),
    ({"mask": "benign"}, r"labels.csv, row 2: task '\w+' \(class\): mask = 'benign'; expected an integer class index"),
    ({"task_id": "breast_4cls"}, r"labels.csv, row 2: unknown task id 'breast_4cls'; closest known ids"),
    ({"num_classes": 4}, r"labels.csv, row 2: num_classes 4 for task 'breast_3cls'; the registry says 3"),
    ({"task_name": "segmentation"}, r"row 2: task_name 'segmentation' for task 'breast_3cls'; expected 'classif"),
    ({"mask": ""}, r"labels.csv, row 2: empty value in column 'mask'"),
])
def test_bad_rows_name_the_file_and_row(tmp_path, changes, message):
    root = _root(tmp_path, [_row(), _row(**changes)])
    with pytest.raises(DataError, match=message):
        read_fmc_index(root)


def test_missing_image_is_a_file_not_found_error(tmp_path):
    root = _root(tmp_path, [_row(image_path="../nope.png")])
    with pytest.raises(MissingFileError):
        read_fmc_index(root)
    with pytest.raises(FileNotFoundError):
        read_fmc_index(root)


def test_corrupt_image_is_named_at_index_time_and_truncated_one_at_load_time(tmp_path):
    root = _root(tmp_path, [_row()])
    (tmp_path / "Classification" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"labels.csv, row 1: .*x.png: not a readable image"):
        read_fmc_index(root)
    data = (tmp_path / "Classification" / "y.png")
    write_png(data, gray(64, 64))
    data.write_bytes(data.read_bytes()[:120])  # header intact, pixels cut off
    write_csv(tmp_path / "csv_files" / "labels.csv", HEADER, [_row(image_path="../Classification/y.png")])
    record = read_fmc_index(root)[0]
    with pytest.raises(DataError, match=r"labels.csv, row 1: .*y.png: not a readable image"):
        record.to_sample()


def test_missing_column_and_unreadable_csv(tmp_path):
    root = _root(tmp_path, [[1, 2, 3]], header=["task_id", "task_name", "num_classes"])
    with pytest.raises(DataError, match=r"labels.csv: missing column\(s\) image_path; expected task_id, task_name, "
                                        r"num_classes, image_path"):
        read_fmc_index(root)
    (tmp_path / "csv_files" / "labels.csv").write_bytes(b"\xff\xfe\x00bad\x00")
    with pytest.raises(DataError, match="labels.csv: not a readable CSV"):
        read_fmc_index(root)
    header = ["task_id", "task_name", "num_classes", "image_path"]
    write_csv(tmp_path / "csv_files" / "labels.csv", header,
              [["breast_3cls", "classification", 3, "../Classification/x.png"]])
    with pytest.raises(DataError, match=r"row 1: column 'mask' missing; class rows of task 'breast_3cls' need mask"):
        read_fmc_index(root)


def test_mask_size_mismatch_and_out_of_range_mask(tmp_path):
    header = ["task_id", "task_name", "num_classes", "image_path", "mask_path"]
    write_png(tmp_path / "S" / "i.png", gray(10, 12))
    write_png(tmp_path / "S" / "m.png", np.zeros((10, 13), np.uint8))
    write_csv(tmp_path / "csv_files" / "s.csv", header,
              [["fetal_head", "segmentation", 2, "../S/i.png", "../S/m.png"]])
    with pytest.raises(DataError, match=r"s.csv, row 1: mask .*m.png is 10×13 but image .*i.png is 10×12 \(H×W\)"):
        read_fmc_index(tmp_path)
    write_png(tmp_path / "S" / "m.png", np.full((10, 12), 2, np.uint8))
    record = read_fmc_index(tmp_path)[0]
    with pytest.raises(DataError, match=r"s.csv, row 1: mask .*m.png holds values \[2\]; expected class indices 0..1"):
        record.to_sample()


def test_keypoint_json_and_count(tmp_path):
    header = ["task_id", "task_name", "num_classes", "image_path", "point_1_xy", "point_2_xy"]
    write_png(tmp_path / "R" / "i.png", gray(10, 12))
    write_csv(tmp_path / "csv_files" / "r.csv", header, [["FUGC", "Regression", 2, "../R/i.png", '"[1, 2]"', '"[3]"']])
    with pytest.raises(DataError, match=r"r.csv, row 1: task 'FUGC' \(keypoints\): point_2_xy = '\[3\]'; "
                                        r"expected a JSON pair \[x, y\]"):
        read_fmc_index(tmp_path)
    write_csv(tmp_path / "csv_files" / "r.csv", header,
              [["IUGC", "Regression", 3, "../R/i.png", '"[1, 2]"', '"[3, 4]"']])
    with pytest.raises(DataError, match=r"r.csv, row 1: column 'point_3_xy' missing"):
        read_fmc_index(tmp_path)
    write_csv(tmp_path / "csv_files" / "r.csv", header,
              [["FUGC", "Regression", 2, "../R/i.png", '"[1, 2]"', '"[3, 4.5]"']])
    assert np.array_equal(read_fmc_index(tmp_path)[0].label, [[1, 2], [3, 4.5]])


def test_empty_dataset_and_missing_root(tmp_path):
    with pytest.raises(MissingFileError, match="no csv_files/ folder; expected an FMC_UIA root"):
        read_fmc_index(tmp_path)
    (tmp_path / "csv_files").mkdir()
    with pytest.raises(DataError, match="no \\*.csv files"):
        read_fmc_index(tmp_path)
    root = _root(tmp_path, [])
    with pytest.raises(DataError, match="labels.csv: a header and no rows; expected at least one row"):
        read_fmc_index(root)
    root = _root(tmp_path, [_row()])
    with pytest.raises(DataError, match=r"empty dataset: no CSV rows for tasks \['fetal_head'\]"):
        read_fmc_index(root, tasks=["fetal_head"])


def test_scan_collects_every_problem_instead_of_stopping(tmp_path):
    root = _root(tmp_path, [_row(), _row(mask=7), _row(task_id="nope"), _row(mask=0)])
    records, problems = scan_fmc(root)
    assert [r.csv_row for r in records] == [1, 4]
    csv = f"{root}/csv_files/labels.csv"
    assert [(p.task, p.message.split(": ")[0]) for p in problems] == [("breast_3cls", f"{csv}, row 2"),
                                                                       ("nope", f"{csv}, row 3")]


def test_windows_separators_and_utf8_bom_are_accepted(tmp_path):
    write_png(tmp_path / "Classification" / "x.png", gray(8, 8))
    (tmp_path / "csv_files").mkdir()
    text = ("\ufefftask_id,task_name,num_classes,image_path,mask\n"
            "breast_3cls,classification,3,..\\Classification\\x.png,0\n")
    (tmp_path / "csv_files" / "w.csv").write_text(text, encoding="utf-8")
    assert read_fmc_index(tmp_path)[0].image_path == "..\\Classification\\x.png"
    assert Image.open(read_fmc_index(tmp_path)[0].image_file).size == (8, 8)


def test_an_image_shared_by_tasks_of_different_types_is_copied_not_re_encoded(tmp_path):
    image = rgb(12, 14, 9)
    mask = np.zeros((12, 14), np.uint8)
    mask[2:5, 3:7] = 1
    samples = [Sample(image, "fetal_head", mask, source="/x/head.png"),
               Sample(image, "fetal_head_det", [[3, 2, 7, 5]], source="/x/head.png")]
    write_fmc(samples, tmp_path)
    seg, det = (read_fmc_index(tmp_path, tasks=[task])[0] for task in ("fetal_head", "fetal_head_det"))
    assert seg.image_file != det.image_file and seg.image_file.read_bytes() == det.image_file.read_bytes()
    assert np.array_equal(det.load_image(), image)
