"""A CSV with a header and no rows is a problem in `m2dino data check` and an error in training
(it used to make its task vanish from both without a word)."""

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
