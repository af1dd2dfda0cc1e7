"""The label-efficiency study's statistics: gains against supervised and the 2-SD rule, by hand."""

import math

import pytest

from label_efficiency import render, summarise


def cell(method, value, seed, dataset="hc18", fraction=0.05):
    return {"dataset": dataset, "fraction": fraction, "method": method, "seed": seed, "DSC": value}


def test_a_gain_counts_only_beyond_twice_the_larger_seed_sd():
    cells = [cell("supervised", 0.60, 0), cell("supervised", 0.62, 1),      # mean 0.61, sd 0.01414
             cell("fixmatch", 0.70, 0), cell("fixmatch", 0.72, 1),          # +0.10: beyond
             cell("mean-teacher", 0.62, 0), cell("mean-teacher", 0.64, 1)]  # +0.02 < 2 × 0.01414
    rows = {r["method"]: r for r in summarise(cells, [])["table"]}
    assert rows["supervised"]["mean"] == pytest.approx(0.61)
    assert rows["supervised"]["sd"] == pytest.approx(math.sqrt(2) * 0.01)
    assert rows["fixmatch"]["gain"] == pytest.approx(0.10) and rows["fixmatch"]["beyond_2sd"]
    assert rows["mean-teacher"]["gain"] == pytest.approx(0.02) and not rows["mean-teacher"]["beyond_2sd"]
    assert "gain" not in rows["supervised"]


def test_one_seed_never_counts_as_beyond_noise_and_the_report_lists_missing_cells():
    summary = summarise([cell("supervised", 0.5, 0), cell("cps", 0.9, 0)], [
        {"strategy": "egad", "seed": 0, "DSC": 0.7}])
    cps = next(r for r in summary["table"] if r["method"] == "cps")
    assert cps["gain"] == pytest.approx(0.4) and cps["beyond_2sd"] is False
    report = render({"command": "python benchmarks/label_efficiency.py", "machine": "test", "summary": summary,
                     "settings": {"steps": 3, "batch_size": 2, "image_size": 64, "partner": "resnet18"},
                     "missing": ["hc18/cps_f0.1_s0"]})
    assert "| hc18 | 5% | cps | DSC | 0.9000 | 1 | +0.4000 | no |" in report
    assert "| egad | 0.7000 | 1 |" in report and "`hc18/cps_f0.1_s0`" in report
