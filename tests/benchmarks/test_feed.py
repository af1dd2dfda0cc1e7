"""benchmarks/feed.py: the report marks each target from the recorded ratios, a part that needs HC18
refuses a missing folder up front, and a quick run measures and writes feed.{md,json}."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import feed  # noqa: E402
from feed_parts.report import render, write_report  # noqa: E402


def _record(loader_ratio: float, moe_ratio: float) -> dict:
    return {"command": "python benchmarks/feed.py", "device": "a CPU", "quick": False,
            "machine": {"cpus": 2, "torch": "2"},
            "parts": {"loader": {"seconds": 1.0, "rows": [
                          {"backbone": "mini", "size": 64, "batch_size": 16, "workers": 2, "ratio": loader_ratio,
                           "prepared_step_s": 0.1}]},
                      "moe": {"seconds": 1.0, "rows": [
                          {"scope": "model", "batch_size": 8, "image_size": 224, "experts": 4, "top_k": 1,
                           "tasks": "single", "old_vs_dense": 1.5, "new_vs_dense": moe_ratio, "new_vs_old": 0.7}]}}}


def test_targets_are_marked_from_the_ratios():
    met = render(_record(1.04, 1.08))
    assert "| mini | 64 | 16 | 2 | 1.04 | yes |" in met and "| 1.50 | 1.08 | yes | 0.70 |" in met
    missed = render(_record(1.30, 1.40))
    assert "| 1.30 | **no** |" in missed and "| 1.40 | **no** |" in missed


def test_the_interpretation_survives_a_new_rendering(tmp_path):
    write_report(_record(1.0, 1.0), tmp_path)
    md = tmp_path / "feed.md"
    md.write_text(md.read_text().replace("_Not written yet: read the tables below._", "Hand-written reading."))
    write_report(_record(1.2, 1.0), tmp_path)
    text = md.read_text()
    assert "Hand-written reading." in text and "| 1.20 |" in text


@pytest.mark.parametrize("parts", [["small_data"], ["compile_accuracy", "decode"]])
def test_parts_that_train_on_hc18_refuse_a_missing_folder_before_measuring(tmp_path, capsys, parts):
    with pytest.raises(SystemExit):
        feed.parse_args(["--parts", *parts, "--hc18", str(tmp_path / "nowhere")])
    assert f"no training_set/ folder (HC18's published layout); pass --hc18 PATH or leave {parts[0]} out" in \
        capsys.readouterr().err


def test_compile_accuracy_reports_each_seeds_difference_beside_the_seed_spread():
    from feed_parts.compile_accuracy import summarise

    def run(seed, eager, compiled):
        return {"seed": seed, "steps": 1500, "difference": compiled - eager,
                **{variant: {"scores": {"fetal_head": mean, "fetal_head_det": mean}, "mean": mean, "wall_s": 60.0}
                   for variant, mean in (("eager", eager), ("compiled", compiled))}}

    runs = [run(0, 0.50, 0.52), run(1, 0.60, 0.59)]
    summary = summarise(runs)
    assert summary["mean_difference"] == pytest.approx(0.005)
    assert summary["eager_seed_sd"] == pytest.approx(0.0707, 1e-3)  # SD of 0.50 and 0.60
    record = {**_record(1.0, 1.0), "parts": {"compile_accuracy": {"seconds": 9.0,
                                                                   "rows": [{"summary": summary, "runs": runs}]}}}
    text = render(record)
    assert "| 0 | compiled | 0.520 | 0.520 | 0.520 | 60 |" in text
    assert "averaged over 2 seed(s): +0.005; the eager runs' seed-to-seed SD: 0.071." in text


def test_a_quick_run_writes_the_report(tmp_path):
    feed.main(["--quick", "--parts", "decode", "loader", "--results-dir", str(tmp_path)])
    record = json.loads((tmp_path / "feed.json").read_text())
    assert set(record["parts"]) == {"decode", "loader"}
    assert {r["source"] for r in record["parts"]["decode"]["rows"]} >= {"PNG", "cache"}
    assert record["parts"]["loader"]["rows"][0]["ratio"] > 0
    assert "Does the model wait on the loader?" in (tmp_path / "feed.md").read_text()


def test_parts_of_an_earlier_run_on_the_same_device_are_kept(tmp_path):
    feed.main(["--quick", "--parts", "decode", "--results-dir", str(tmp_path)])
    feed.main(["--quick", "--parts", "loader", "--results-dir", str(tmp_path)])
    record = json.loads((tmp_path / "feed.json").read_text())
    assert list(record["parts"]) == ["decode", "loader"]
    assert "--parts decode" in record["parts"]["decode"]["command"]
    feed.main(["--quick", "--parts", "loader", "--fresh", "--results-dir", str(tmp_path)])
    assert list(json.loads((tmp_path / "feed.json").read_text())["parts"]) == ["loader"]
