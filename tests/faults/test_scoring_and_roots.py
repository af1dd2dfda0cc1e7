"""Issue 27, scoring, submissions, FMC roots and CLI sizes: each hostile or careless input is refused in
one line naming it (or, for a bad predicted mask, reported as that prediction's failure), and nothing is
allocated, read outside its folder or overwritten first."""

import csv
import json
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from m2dino.cli.main import main
from m2dino.data.errors import DataError
from m2dino.data.fmc import read_fmc_index, scan_fmc
from m2dino.evaluation.scoring.per_task import ScoreSettings
from m2dino.evaluation.submission import SubmissionEntry, write_submission
from m2dino.evaluation.submission_reader import SubmissionFormatError, read_submission
from m2dino.limits import LimitError
from m2dino.models.predictions import SegmentationPrediction
from m2dino.tasks import load_group_mapping

COLUMNS = ["task_id", "task_name", "num_classes", "image_path", "mask_path"]
IMAGE, MASK = "../Segmentation/Two/hc/IMAGES/a.png", "../Segmentation/Two/hc/MASKS/a.png"
SUBMITTED_MASK = "Segmentation/Two/hc/MASKS/a.png"   # where the submission keeps the prediction of MASK


def save(root, relative, array):
    path = root / "csv_files" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_rows(root, rows):
    (root / "csv_files").mkdir(parents=True, exist_ok=True)
    with open(root / "csv_files/train.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows({"task_id": "fetal_head", "task_name": "segmentation", "num_classes": 2, **row}
                         for row in rows)


@pytest.fixture
def fmc_root(tmp_path):
    root = tmp_path / "fmc"
    gt = np.zeros((6, 8), np.uint8)
    gt[1:3, 1:3] = 1
    save(root, IMAGE, np.zeros((6, 8, 3), np.uint8))
    save(root, MASK, gt)
    write_rows(root, [{"image_path": IMAGE, "mask_path": MASK}])
    return root


def submit(tmp_path, mask):
    return write_submission([SubmissionEntry("fetal_head", IMAGE, SegmentationPrediction(mask), mask_path=MASK)],
                            tmp_path / "pred").root


def score(fmc_root, pred, out, *extra):
    return main(["score", "--data", str(fmc_root), "--pred", str(pred), "--out", str(out), "--quiet", *extra])


def header_only_png(path, width, height):
    """A PNG of a few dozen bytes that declares ``width`` × ``height`` 8-bit gray pixels (no pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def one_line_error(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"m2dino {command}: error: ") and "\n" not in err and "Traceback" not in err
    return err


# 1. m2dino score: a submission is scored on its own files only; a bad mask is that prediction's failure


def test_a_predicted_mask_linked_to_the_ground_truth_refuses_the_submission(fmc_root, tmp_path, capsys):
    pred = submit(tmp_path, np.zeros((6, 8), np.uint8))
    linked = pred / SUBMITTED_MASK
    linked.unlink()
    linked.symlink_to(fmc_root / "csv_files" / MASK)             # would score DSC 1.0
    out = tmp_path / "metrics.json"
    assert score(fmc_root, pred, out) == 2
    err = one_line_error(capsys, "score")
    assert f"{SUBMITTED_MASK} -> {(fmc_root / 'Segmentation/Two/hc/MASKS/a.png').resolve()}" in err
    assert "outside the submission folder" in err and not out.exists()


def test_a_linked_folder_leaving_the_submission_is_refused_by_name(fmc_root, tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "Segmentation").symlink_to(fmc_root / "Segmentation", target_is_directory=True)
    with pytest.raises(SubmissionFormatError, match=r"1 link\(s\) lead outside the submission folder: Segmentation "):
        read_submission(pred)
    assert score(fmc_root, pred, tmp_path / "metrics.json") == 2
    assert "Segmentation -> " in one_line_error(capsys, "score")


def test_a_link_inside_the_submission_is_followed(fmc_root, tmp_path):
    gt = np.asarray(Image.open(fmc_root / "csv_files" / MASK))
    pred = submit(tmp_path, gt)
    copy = pred / "kept/a.png"
    copy.parent.mkdir()
    (pred / SUBMITTED_MASK).rename(copy)
    (pred / SUBMITTED_MASK).symlink_to(copy)
    out = tmp_path / "metrics.json"
    assert score(fmc_root, pred, out) == 0
    assert json.loads(out.read_text())["segmentation"]["fetal_head"]["DSC"] == 1.0


@pytest.mark.parametrize("width, height, expected", [
    (30_000, 30_000, "refused as a decompression bomb"),         # beyond PIL's own bomb limit
    (7_000, 7_000, "exceeds m2dino's limit of 25,000,000 pixels"),  # below it, beyond m2dino's
])
def test_an_oversized_predicted_mask_is_reported_as_an_invalid_prediction(fmc_root, tmp_path, capsys, width,
                                                                          height, expected):
    pred = submit(tmp_path, np.zeros((6, 8), np.uint8))
    header_only_png(pred / SUBMITTED_MASK, width, height)
    out = tmp_path / "metrics.json"
    assert score(fmc_root, pred, out) == 3                        # scored: the report is written
    problems = json.loads(out.read_text())["summary"]["problems"]["fetal_head"]
    assert problems["invalid"] == 1
    [note] = [n for n in problems["notes"] if n.startswith("invalid: ")]
    assert SUBMITTED_MASK in note and expected in note
    assert "1 prediction(s) missing or invalid" in capsys.readouterr().err


# 2. An FMC root's images and masks resolve inside the root


@pytest.mark.parametrize("column", ["image_path", "mask_path"])
def test_an_fmc_row_leading_outside_the_root_is_refused_naming_csv_row_and_path(fmc_root, tmp_path, column):
    outside = save(tmp_path / "elsewhere", "../x.png", np.zeros((6, 8), np.uint8))  # tmp_path/elsewhere/x.png
    path = "../../elsewhere/x.png"
    write_rows(fmc_root, [{"image_path": IMAGE, "mask_path": MASK, column: path}])
    assert outside.is_file()
    with pytest.raises(DataError, match=rf"train.csv, row 1: {column} '\.\./\.\./elsewhere/x.png' leads outside "
                                        r"the FMC root .*fmc; expected a file inside the root"):
        read_fmc_index(fmc_root)
    records, problems = scan_fmc(fmc_root)                        # m2dino data check lists it
    assert not records and "leads outside the FMC root" in problems[0].message


def test_an_absolute_path_outside_the_root_is_refused_without_looking_at_it(fmc_root, tmp_path):
    write_rows(fmc_root, [{"image_path": str(tmp_path / "no_such_file.png"), "mask_path": MASK}])
    with pytest.raises(DataError, match="leads outside the FMC root"):  # not "file not found": nothing is probed
        read_fmc_index(fmc_root)


def test_a_link_inside_the_root_leading_out_of_it_is_refused(fmc_root, tmp_path):
    outside = save(tmp_path / "elsewhere", "../x.png", np.zeros((6, 8, 3), np.uint8))
    link = fmc_root / "Segmentation/Two/hc/IMAGES/b.png"
    link.symlink_to(outside)
    write_rows(fmc_root, [{"image_path": "../Segmentation/Two/hc/IMAGES/b.png", "mask_path": MASK}])
    with pytest.raises(DataError, match=rf"row 1: image_path '\.\./Segmentation/Two/hc/IMAGES/b.png' links to "
                                        rf"{outside.resolve()}, outside the FMC root"):
        read_fmc_index(fmc_root)


def test_paths_inside_the_root_still_read_including_a_relative_root(fmc_root, monkeypatch):
    assert [r.image_path for r in read_fmc_index(fmc_root)] == [IMAGE]
    monkeypatch.chdir(fmc_root)
    assert [r.image_path for r in read_fmc_index(".")] == [IMAGE]


# 3. m2dino evaluate --batch-size


@pytest.mark.parametrize("value", ["-1", "0", "100000"])
def test_evaluate_batch_size_is_bounded_before_the_model_loads(tmp_path, capsys, value):
    code = main(["evaluate", "--model", str(tmp_path / "no_model"), "--data", str(tmp_path / "no_data"),
                 "--out", str(tmp_path / "out"), "--batch-size", value, "--device", "cpu", "--quiet"])
    assert code == 2
    err = one_line_error(capsys, "evaluate")
    assert f"--batch-size={int(value):,}" in err
    assert ("expected a whole number >= 1" if int(value) < 1 else "M2DINO_MAX_BATCH_SIZE") in err
    assert not (tmp_path / "out").exists()


# 4. m2dino score --nsd-tolerance


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9"])
def test_score_nsd_tolerance_is_finite_and_in_range(fmc_root, tmp_path, capsys, value):
    pred = submit(tmp_path, np.zeros((6, 8), np.uint8))
    assert score(fmc_root, pred, tmp_path / "metrics.json", "--nsd-tolerance", value) == 2
    assert "--nsd-tolerance=" in one_line_error(capsys, "score")
    assert not (tmp_path / "metrics.json").exists()


def test_score_settings_refuse_a_nan_tolerance_in_the_library_too():
    with pytest.raises(LimitError, match="nsd_tolerance=nan: expected a finite number in"):
        ScoreSettings(nsd_tolerance=math.nan)
    with pytest.raises(LimitError, match="ap_iou_threshold"):
        ScoreSettings(ap_iou_threshold=2.0)
    assert ScoreSettings(nsd_tolerance=0).nsd_tolerance == 0     # exact boundary agreement stays allowed


# 5. m2dino data synth / cache sizes


@pytest.fixture
def no_canvas(monkeypatch):
    """Fail the test if a synthetic image would be allocated."""
    from m2dino.data.synthetic import generator

    def refuse(*args, **kwargs):
        raise AssertionError("a canvas was allocated before the size was checked")
    monkeypatch.setattr(generator, "Canvas", refuse)


@pytest.mark.parametrize("size, expected", [
    ("100000", "--size=100,000 exceeds m2dino's limit of 4,096 (raise it with M2DINO_MAX_SYNTHETIC_SIDE"),
    ("64x100000", "--size=100,000 exceeds"),
    ("0", "--size=0: expected a whole number >= 1"),
    ("big", "--size 'big': expected N or HxW in pixels"),
])
def test_data_synth_size_is_bounded_before_allocation(tmp_path, capsys, no_canvas, size, expected):
    assert main(["data", "synth", str(tmp_path / "out"), "--size", size, "--tasks", "fetal_head"]) == 2
    assert expected in one_line_error(capsys, "data")
    assert not (tmp_path / "out").exists()


def test_data_synth_per_task_is_a_positive_count(tmp_path, capsys, no_canvas):
    assert main(["data", "synth", str(tmp_path / "out"), "--per-task", "-1", "--tasks", "fetal_head"]) == 2
    assert "--per-task=-1: expected a whole number >= 1" in one_line_error(capsys, "data")


def test_the_synthetic_library_refuses_a_huge_side_before_allocation(no_canvas):
    from m2dino.data.synthetic import make_synthetic_samples

    with pytest.raises(LimitError, match="image_size=100,000 exceeds m2dino's limit"):
        make_synthetic_samples(["fetal_head"], per_task=1, image_size=100_000)


def test_data_synth_streams_samples_to_disk(tmp_path):
    from m2dino.data.synthetic import generator

    samples = generator.iter_synthetic_samples(["fetal_head"], per_task=2, image_size=32)
    assert not isinstance(samples, list) and len(list(samples)) == 2
    assert main(["data", "synth", str(tmp_path / "out"), "--size", "32", "--per-task", "2", "--tasks",
                 "fetal_head", "--splits", "train"]) == 0
    assert len(read_fmc_index(tmp_path / "out/train")) == 2


@pytest.mark.parametrize("flags, expected", [
    (["--size", "100000"], "--size=100,000 exceeds m2dino's limit of 2,048 (raise it with M2DINO_MAX_INPUT_SIDE"),
    (["--size", "64", "--workers", "-2"], "--workers=-2: expected 0"),
])
def test_data_cache_sizes_are_bounded(fmc_root, tmp_path, capsys, flags, expected):
    assert main(["data", "cache", str(fmc_root), "--cache-dir", str(tmp_path / "cache"), *flags]) == 2
    assert expected in one_line_error(capsys, "data")
    assert not (tmp_path / "cache").exists()


def test_data_build_public_val_fraction_is_finite_and_a_fraction(tmp_path, capsys):
    assert main(["data", "build-public", "--src", str(tmp_path), "--shared", str(tmp_path), str(tmp_path / "out"),
                 "--val-fraction", "nan"]) == 2
    assert "--val-fraction=nan: expected a finite number in [0, 1]" in one_line_error(capsys, "data")


# 6. --groups YAML with a python tag


def test_a_groups_yaml_with_a_python_tag_is_one_line_naming_the_file(fmc_root, tmp_path, capsys):
    groups = tmp_path / "groups.yaml"
    groups.write_text("mine: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ValueError, match=r"groups.yaml: not a plain YAML config \(could not determine a constructor"):
        load_group_mapping(groups)
    pred = submit(tmp_path, np.zeros((6, 8), np.uint8))
    assert score(fmc_root, pred, tmp_path / "metrics.json", "--groups", str(groups)) == 2
    assert f"{groups}: not a plain YAML config" in one_line_error(capsys, "score")


def test_a_groups_json_that_is_not_json_names_the_file(tmp_path):
    groups = tmp_path / "groups.json"
    groups.write_text("{mine: [fetal_head]")
    with pytest.raises(ValueError, match=r"groups.json: not valid JSON \(Expecting property name"):
        load_group_mapping(groups)


# 7. m2dino select --out


def select(pool, out, *extra):
    return main(["select", "--model", str(pool.parent / "no_model"), "--pool", str(pool), "--out", str(out),
                 "--budget", "1", "--strategy", "random", "--device", "cpu", "--quiet", *extra])


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "scan.png")
    return folder


def test_select_refuses_an_existing_out_without_overwrite(pool, tmp_path, capsys):
    out = tmp_path / "picked.csv"
    out.write_text("earlier picks\n")
    assert select(pool, out) == 2
    assert f"--out {out} exists; pass --overwrite to replace it" in one_line_error(capsys, "select")
    assert out.read_text() == "earlier picks\n"


def test_select_refuses_an_out_inside_the_pool(pool, capsys):
    for out in (pool / "picked.csv", pool / "sub/picked.csv"):
        assert select(pool, out, "--overwrite") == 2
        err = one_line_error(capsys, "select")
        assert f"--out {out} is inside the --pool folder {pool}" in err
        assert not out.exists()


def test_select_batch_size_is_bounded(pool, tmp_path, capsys):
    assert select(pool, tmp_path / "picked.csv", "--batch-size", "0") == 2
    assert "--batch-size=0: expected a whole number >= 1" in one_line_error(capsys, "select")


def test_select_overwrite_replaces_the_picks(pool, tmp_path):
    import torch

    from m2dino import M2DINO, M2DINOConfig

    torch.manual_seed(0)
    M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head"], image_size=32, decoder_features=8)
           ).save_pretrained(tmp_path / "no_model")
    out = tmp_path / "picked.csv"
    out.write_text("earlier picks\n")
    assert select(pool, out, "--overwrite") == 0
    assert out.read_text().splitlines()[0] == "image,score,rank,strategy"
