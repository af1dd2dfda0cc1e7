"""The reports are functions of their JSON: the committed results re-render byte for byte, and the
writer's files read back."""

import copy
import json
import tempfile
from argparse import Namespace
from pathlib import Path

import pytest

from harness.report import RESULTS, output_paths, read_result, write_result
from speed_parts.report import markdown as speed_markdown


def committed(name: str) -> tuple[dict, str]:
    return json.loads((RESULTS / f"{name}.json").read_text()), (RESULTS / f"{name}.md").read_text()


def test_committed_speed_report_rerenders_identically():
    result, report = committed("speed")
    assert speed_markdown(result) == report


def test_committed_metrics_speed_report_rerenders_identically():
    import metrics_speed

    result, report = committed("metrics_speed")
    assert metrics_speed.markdown(result) == report


def test_whole_backbone_control_row_is_rendered_when_measured():
    result, report = committed("speed")
    assert "A/A: dense vs dense | — | — |" not in report
    result = copy.deepcopy(result)
    cell = result["moe_model"][0]
    ratio = {"median": 1.0123, "min": 0.95, "max": 1.07, "values": [1.0123]}
    cell["control"] = {"forward": {"ratio": ratio}, "train": {"ratio": dict(ratio, median=0.9876)}}
    lines = speed_markdown(result).splitlines()
    row = (f"| {cell['size']} | {cell['precision']} | — | — | A/A: dense vs dense | — | — | 1.012 (0.95–1.07) | — "
           "| 0.988 (0.95–1.07) | — |")
    assert row in lines
    assert lines[lines.index(row) - 1] == "|---" * 11 + "|"   # first row of the whole-backbone table
    assert any("the noise floor of these pairs" in line for line in lines)


def test_written_result_reads_back(tmp_path):
    result = {"command": "python benchmarks/x.py", "values": [1.5, 2.0], "nested": {"ratio": 1.25}}
    md, js = tmp_path / "out" / "x.md", tmp_path / "out" / "x.json"
    write_result(md, js, "# report\n", result)
    assert md.read_text() == "# report\n" and read_result(js) == result
    assert js.read_text().startswith('{\n "command"')   # one-space indent, as the committed speed.json


def test_missing_result_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json: no result to re-render"):
        read_result(tmp_path / "nothing.json")


def test_quick_runs_never_write_over_the_committed_results(tmp_path):
    quick = output_paths(Namespace(out_dir=None, name="speed", quick=True))
    assert quick[0].parent == Path(tempfile.gettempdir()) / "m2dino_speed_quick"
    assert output_paths(Namespace(out_dir=None, name="speed", quick=False)) == (RESULTS / "speed.md",
                                                                               RESULTS / "speed.json")
    assert output_paths(Namespace(out_dir=tmp_path, name="speed", quick=True))[1] == tmp_path / "speed.json"
