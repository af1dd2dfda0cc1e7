import numpy as np
import pytest

from m2dino.cli.data_commands import parse_options
from m2dino.cli.main import main
from m2dino.data import read_fmc_index

from .helpers import write_png
from .layouts import write_usgra


def test_convert_then_check(tmp_path, capsys):
    src = write_usgra(tmp_path / "usgra")
    assert main(["data", "convert", "usgra", str(src), str(tmp_path / "fmc")]) == 0
    assert "train:" in capsys.readouterr().out
    assert len(read_fmc_index(tmp_path / "fmc" / "train")) == 3
    assert main(["data", "check", str(tmp_path / "fmc")]) == 0
    out = capsys.readouterr().out
    assert "== " in out and "nerve_vessel_seg" in out and "32×40 (3)" in out and "PROBLEM" not in out
    assert "structure_2: 2" in out  # images of the train split in which class 2 occurs


def test_check_reports_problems_and_fails(tmp_path, capsys):
    src = write_usgra(tmp_path / "usgra")
    main(["data", "convert", "usgra", str(src), str(tmp_path / "fmc")])
    record = read_fmc_index(tmp_path / "fmc" / "test")[0]
    write_png(record.mask_file, np.full((32, 40), 7, np.uint8))
    record.image_file.write_bytes(b"garbage")
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path / "fmc" / "test")]) == 1
    out = capsys.readouterr().out
    assert "[1 problem(s)]" in out and "PROBLEM nerve_vessel_seg" in out and "not a readable image" in out
    assert main(["data", "check", str(tmp_path / "fmc" / "test"), "--quick"]) == 1


def test_synth_writes_a_checkable_suite(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "s"), "--per-task", "2", "--size", "32x48",
                 "--tasks", "fetal_head", "organ_cls", "thyroid_nodule_det", "--splits", "train"]) == 0
    assert main(["data", "check", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "organ_0: 1, organ_1: 1" in out and "32×48 (2)" in out and "nodule: 2" in out


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "convert", "usgra", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert "m2dino data: error: folder not found" in capsys.readouterr().err
    src = write_usgra(tmp_path / "usgra")
    assert main(["data", "convert", "usgra", str(src), str(tmp_path / "out"), "-o", "seed=3"]) == 2
    assert "unexpected keyword argument 'seed'" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path)]) == 2


def test_option_values_are_read_as_json_when_they_parse():
    assert parse_options(["task=fetal_head", "seed=3", "resize_masks=true", 'fractions={"train": 1}']) == {
        "task": "fetal_head", "seed": 3, "resize_masks": True, "fractions": {"train": 1}}
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_options(["seed"])
