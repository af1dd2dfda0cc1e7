"""FMC roots that used to fail silently or vaguely: a CSV with a header and no rows (its task vanished
from `m2dino data check` and training), and a folder of split roots passed as one root."""

import pytest

from m2dino.cli.main import main
from m2dino.data import DataError, read_fmc_index, write_fmc
from m2dino.data.check import check_fmc
from m2dino.training.data_sources import load_training_data

from .test_fmc import _samples


@pytest.fixture
def root_with_an_empty_csv(tmp_path):
    write_fmc(_samples(), tmp_path, split_name="train")
    csv = tmp_path / "csv_files" / "train_breast_3cls.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")  # keep the header only
    return tmp_path, csv


def test_training_stops_naming_the_empty_csv(root_with_an_empty_csv):
    root, csv = root_with_an_empty_csv
    message = f"{csv}: a header and no rows; expected at least one row of task 'breast_3cls'"
    with pytest.raises(DataError, match=message):
        read_fmc_index(root)
    with pytest.raises(DataError, match=message):
        load_training_data(str(root), None, 32, 0)
    assert {r.task_id for r in read_fmc_index(root, tasks=["IUGC"])} == {"IUGC"}  # other tasks still load alone


def test_data_check_lists_the_task_with_a_problem_and_fails(root_with_an_empty_csv, capsys):
    root, csv = root_with_an_empty_csv
    reports = check_fmc(root, decode=False)
    assert reports["breast_3cls"].count == 0 and "a header and no rows" in reports["breast_3cls"].problems[0]
    assert main(["data", "check", str(root), "--quick"]) == 1
    assert f"PROBLEM breast_3cls: {csv}: a header and no rows" in capsys.readouterr().out


def test_a_folder_of_split_roots_names_them(tmp_path):
    """What `m2dino data convert` writes (DST/train, DST/val) passed where one root is expected."""
    for split in ("train", "val"):
        write_fmc(_samples()[:2], tmp_path / split, split_name=split)
    with pytest.raises(DataError, match=f"it holds the split roots train, val: pass one, e.g. {tmp_path / 'train'}"):
        read_fmc_index(tmp_path)
