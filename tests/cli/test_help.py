"""`m2dino data convert --help` lists one dataset per line, with where it comes from."""

import pytest

from m2dino.cli.main import main
from m2dino.data.adapters import ADAPTERS


def test_convert_help_is_one_readable_line_per_dataset(capsys):
    with pytest.raises(SystemExit):
        main(["data", "convert", "--help"])
    out = capsys.readouterr().out
    assert "::" not in out and "layout::" not in out
    lines = out.splitlines()
    for name in ADAPTERS:
        assert any(line.startswith(f"  {name} ") for line in lines), name
    assert "  hc18            HC18 (van den Heuvel et al. 2018; Zenodo 1327317), training set" in lines
    assert "one root per split, DST/train, DST/val (and DST/test where the dataset has one)." in lines
