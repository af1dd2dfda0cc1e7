"""Results record no machine paths: paths inside the repository relative to it, absolute ones outside
it elided (issue 26, item 7)."""

import json
import re
import sys

import label_efficiency
from harness.report import REPO, command_line, elided_path, portable_path

# An absolute path as a string holds it: alone, after a space, a quote, ``=`` or ``NAME:``.
ABSOLUTE = re.compile(r"(?:^|[\s'\"=:`(])/(?!/)[^\s'\"`]")


def test_paths_inside_the_repository_are_relative_to_it(tmp_path, monkeypatch):
    assert portable_path(REPO / "benchmarks" / "results") == "benchmarks/results"
    assert portable_path(REPO) == "."
    monkeypatch.chdir(REPO / "benchmarks")
    assert portable_path("results") == "benchmarks/results"   # relative to where the command ran


def test_paths_outside_are_kept_when_relative_and_elided_when_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert portable_path("../shared/data") == "../shared/data"
    assert portable_path("/tmp/i10/s54/train") == ".../s54/train"
    assert portable_path("/tmp/le") == ".../le"
    assert elided_path(tmp_path) == f".../{tmp_path.parent.name}/{tmp_path.name}"


def test_the_command_line_elides_absolute_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "speed.py"), "--out-dir", "/root/out/speed",
                                      "--data", "fmc:/tmp/public/train", "--cache=/tmp/a/b/c", "--note",
                                      "see https://example.org/x", "https://example.org/y", "../shared/data"])
    assert command_line() == ("python benchmarks/speed.py --out-dir .../out/speed --data fmc:.../public/train "
                              "--cache=.../b/c --note 'see https://example.org/x' https://example.org/y "
                              "../shared/data")


def test_a_written_result_holds_no_absolute_path(tmp_path, monkeypatch):
    """label_efficiency.json once held its absolute ``out_dir``: every path argument given absolute here."""
    argv = ["--report-only", "--no-selection", "--datasets", "hc18", "--data-root", str(tmp_path / "data"),
            "--work-dir", str(tmp_path / "work"), "--out-dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "label_efficiency.py"), *argv])
    assert label_efficiency.main(argv) == 0
    written = (tmp_path / "out" / "label_efficiency.json").read_text()
    strings = [v for v in json.loads(written)["settings"].values() if isinstance(v, str)]
    assert f".../{tmp_path.name}/out" in strings
    assert not [line for line in written.splitlines() if ABSOLUTE.search(line)]
    assert str(tmp_path) not in (tmp_path / "out" / "label_efficiency.md").read_text()
