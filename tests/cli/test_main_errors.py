"""`m2dino` turns OSError and data errors into one line naming the path, and knows its version."""

import errno

import pytest

import m2dino
from m2dino.cli.main import main
from m2dino.data import synthetic


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"m2dino {m2dino.__version__}\n"


def test_an_output_path_under_a_file_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert main(["data", "synth", str(tmp_path / "file.txt" / "out"), "--per-task", "1", "--tasks", "cervix"]) == 2
    line = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert line.startswith(f"m2dino data: error: {tmp_path / 'file.txt'}/out")
    assert line.endswith(": Not a directory") and "Errno" not in line


def test_a_full_disk_names_the_output_folder(tmp_path, monkeypatch, capsys):
    def disk_full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(synthetic, "write_synthetic", disk_full)
    assert main(["data", "synth", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"m2dino data: error: No space left on device (output: {tmp_path / 'out'})\n"


def test_a_missing_input_does_not_blame_the_output(tmp_path, capsys):
    assert main(["data", "synth", str(tmp_path / "out"), "--tasks", "no_such_task"]) == 2
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--data", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 2
    assert "(output:" not in capsys.readouterr().err
