"""benchmarks/recipe_study.py: cells planned with their references, paired Δ, resumable by signature,
and one whole (tiny) study on a synthetic build-public-like root."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from m2dino.cli.main import main as m2dino_main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import recipe_study  # noqa: E402
from recipe_study_parts.cell import collapsed, signature  # noqa: E402
from recipe_study_parts.factors import FACTORS, cell_config  # noqa: E402
from recipe_study_parts.report import factor_rows, render  # noqa: E402


def _cell(factor, seed, scores, val=None, ips=10.0):
    return {"factor": factor, "seed": seed, "commit": "abc", "steps": 4, "train_seconds": 60.0,
            "images_per_second": ips, "test": {"scores": scores, "collapsed": {}},
            "val": {"scores": val or scores}}


def test_paired_deltas_and_speed_ratio_are_computed_per_seed():
    study = {"factors": {"baseline": {"question": "q", "against": "baseline"},
                         "steps_x2": {"question": "q2", "against": "baseline"}},
             "cells": [_cell("baseline", 0, {"a": 0.5, "b": 0.7}, ips=10), _cell("baseline", 1, {"a": 0.6, "b": 0.6}),
                       _cell("steps_x2", 0, {"a": 0.7, "b": 0.7}, ips=5), _cell("steps_x2", 1, {"a": 0.6, "b": 0.8},
                                                                                  ips=5)]}
    rows = {r["factor"]: r for r in factor_rows(study)}
    # seed 0: 0.7 - 0.6 = +0.1; seed 1: 0.7 - 0.6 = +0.1
    assert rows["steps_x2"]["delta_test"] == pytest.approx((0.1, 0.0))
    assert rows["baseline"]["test"] == pytest.approx((0.6, 0.0))
    assert rows["steps_x2"]["speed_ratio"] == pytest.approx((0.5 * 0.5) ** 0.5)
    assert "delta_test" not in rows["baseline"]


def test_planned_cells_add_each_factors_reference_first(tmp_path):
    args = recipe_study.parse_args(["--root", str(tmp_path), "--factors", "steps_x2", "--seeds", "0", "1"])
    assert recipe_study.planned_cells(args) == [("baseline", 0), ("baseline", 1), ("steps_x2", 0), ("steps_x2", 1)]


def test_signature_ignores_folders_and_loader_settings_but_not_the_recipe():
    one = cell_config(FACTORS["baseline"], "/a", ["fetal_head"], 100, 0, "/cache/a", "/out/a")
    two = cell_config(FACTORS["baseline"], "/b", ["fetal_head"], 100, 0, None, "/out/b")
    two["data"]["num_workers"] = 3
    assert signature(one, "x") == signature(two, "x")
    longer = cell_config(FACTORS["steps_x2"], "/a", ["fetal_head"], 100, 0, "/cache/a", "/out/a")
    assert longer["train"]["steps"] == 200
    assert signature(longer, "x") != signature(one, "x")
    assert signature(one, "x") != signature(one, "y")  # another data root


def test_a_pretrained_backbone_file_counts_by_its_content_not_its_path(tmp_path):
    factor = FACTORS["us_pretrained_all"]
    with pytest.raises(ValueError, match="us_pretrained_all .*--us-backbone"):
        cell_config(factor, "/a", ["fetal_head"], 100, 0, None, "/out")
    first, moved = tmp_path / "backbone.safetensors", tmp_path / "moved.safetensors"
    first.write_bytes(b"weights after 2,000 steps")
    moved.write_bytes(b"weights after 2,000 steps")
    config = cell_config(factor, "/a", ["fetal_head"], 100, 0, None, "/out", us_backbone=str(first))
    assert config["model"]["pretrained"] == str(first)
    same = signature(cell_config(factor, "/a", ["fetal_head"], 100, 0, None, "/out", us_backbone=str(moved)), "x")
    assert signature(config, "x") == same
    first.write_bytes(b"weights after 4,000 steps")  # the pretraining went on into the same file
    assert signature(config, "x") != same


def test_the_study_refuses_a_missing_backbone_file_or_none_for_a_factor_that_needs_one(tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe_study.parse_args(["--root", str(tmp_path), "--us-backbone", str(tmp_path / "none.safetensors")])
    assert "none.safetensors: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recipe_study.parse_args(["--root", str(tmp_path), "--factors", "baseline", "us_pretrained_all"])
    assert "factor us_pretrained_all starts from a pretrained backbone file: give it with --us-backbone" in (
        capsys.readouterr().err)


def test_each_input_size_has_its_own_resize_cache():
    # one cache holds one geometry and refuses another, so the size factors cannot share the baseline's
    baseline = cell_config(FACTORS["baseline"], "/a", ["fetal_head"], 100, 0, "/cache", "/out/a")
    larger = cell_config(FACTORS["size192"], "/a", ["fetal_head"], 100, 0, "/cache", "/out/b")
    assert (baseline["data"]["cache_dir"], larger["data"]["cache_dir"]) == ("/cache/128px", "/cache/192px")
    assert cell_config(FACTORS["size192"], "/a", ["fetal_head"], 100, 0, None, "/out")["data"]["cache_dir"] is None


def test_collapse_is_at_most_one_class_with_nonzero_f1():
    metrics = {"classification": {"t1": {"per_class": {"class_0": {"F1": 0.6}, "class_1": {"F1": 0.0}}},
                                  "t2": {"per_class": {"class_0": {"F1": 0.6}, "class_1": {"F1": 0.1}}}},
               "segmentation": {"s": {"DSC": 0.5, "per_class": {"class_0": {"DSC": 0.5, "HD": 3.0}}}}, "summary": {}}
    assert collapsed(metrics, ["t1", "t2", "s"]) == {"t1": True, "t2": False}


def test_a_tiny_study_runs_reports_and_is_reused(tmp_path):
    root = tmp_path / "root"
    assert m2dino_main(["data", "synth", str(root), "--per-task", "4", "--size", "64", "--splits", "train", "val",
                        "test", "--tasks", "fetal_head", "fetal_plane_cls"]) == 0
    (root / "datasheet.json").write_text('{"synthetic": true}')
    argv = ["--root", str(root), "--tasks", "fetal_head", "fetal_plane_cls", "--factors", "steps_half",
            "--seeds", "0", "--steps", "4", "--output-dir", str(tmp_path / "out"),
            "--results-dir", str(tmp_path / "results")]
    recipe_study.main(argv)
    study = json.loads((tmp_path / "results" / "recipe_study.json").read_text())
    assert [(c["factor"], c["steps"]) for c in study["cells"]] == [("baseline", 4), ("steps_half", 2)]
    for cell in study["cells"]:
        assert set(cell["test"]["scores"]) == {"fetal_head", "fetal_plane_cls"}
        assert all(0 <= v <= 1 for v in cell["test"]["scores"].values())
        assert set(cell["test"]["collapsed"]) == {"fetal_plane_cls"}  # the classification task only
    md = (tmp_path / "results" / "recipe_study.md").read_text()
    assert "| `steps_half` |" in md and (tmp_path / "results" / "recipe_study.png").is_file()
    assert md == render(study)  # no interpretation written yet: the markdown is the rendering
    # the budget curve lists the length-only factors by steps, the baseline among them
    curve = md.split("## Length")[1]
    assert curve.index("| 2 | `steps_half` | 1 |") < curve.index("| 4 | `baseline` | 1 |")
    record = tmp_path / "out" / "baseline" / "seed0" / "cell.json"
    before = record.stat().st_mtime_ns
    recipe_study.main(argv)  # every cell finished: nothing is trained again
    assert record.stat().st_mtime_ns == before


def test_nested_override_keys_reach_their_section():
    config = cell_config(FACTORS["aug_trivial"], "/a", ["fetal_head"], 100, 0, None, "/out")
    assert config["data"]["augment"] == {"policy": "trivial"}
    from m2dino.recipes import RunConfig

    assert RunConfig.from_dict(config).data.augment.policy == "trivial"


def _headline_cell(factor, seed, dsc, accuracy, f1, collapsed=False):
    cell = _cell(factor, seed, {"fetal_head": dsc, "fetal_plane_cls": (accuracy + f1) / 2})
    cell["test"]["headline"] = {"fetal_head": {"DSC": dsc, "HD": 9.0},
                                "fetal_plane_cls": {"Accuracy": accuracy, "F1_macro": f1}}
    cell["test"]["collapsed"] = {"fetal_plane_cls": collapsed}
    return cell


def test_targets_and_macro_f1_tables_show_each_recipe_beside_the_constant_and_the_target():
    study = {"tasks": ["fetal_head", "fetal_plane_cls"],
             "factors": {"baseline": {"question": "q", "against": "baseline", "overrides": {}, "steps_scale": 1.0},
                         "combined": {"question": "c", "against": "baseline", "overrides": {"train.lr": 1.0},
                                      "steps_scale": 1.0}},
             "constant": {"scores": {"fetal_head": 0.4, "fetal_plane_cls": 0.2},
                          "headline": {"fetal_head": {"DSC": 0.4}, "fetal_plane_cls": {"Accuracy": 0.3,
                                                                                         "F1_macro": 0.1}}},
             "cells": [_headline_cell("baseline", 0, 0.80, 0.50, 0.10, collapsed=True),
                       _headline_cell("baseline", 1, 0.90, 0.60, 0.30),
                       _headline_cell("combined", 0, 0.97, 0.90, 0.80)],
             "command": "c", "commit": "abc", "root": "r", "steps": 4,
             "machine": {"processor": "cpu", "cpus": 2, "jobs": 1, "torch": "2"}}
    md = render(study)
    # baseline DSC 0.80 / 0.90: mean 0.850, SD 0.0707; combined one seed; fetal_head's target is 0.96
    assert "| `fetal_head` | DSC | 0.400 | 0.850 ± 0.071 | 0.970 ± 0.000 | ≥ 0.96 |" in md
    assert "| `fetal_plane_cls` | Accuracy | 0.300 | 0.550 ± 0.071 | 0.900 ± 0.000 | ≥ 0.80 |" in md
    # macro F1's target is the constant's 0.10 + 0.15; one baseline seed collapsed
    assert ("| `fetal_plane_cls` | F1_macro | 0.100 | 0.200 ± 0.141 (1 collapsed) | 0.800 ± 0.000 | ≥ 0.25 |"
            in md)
    # mean normalised: baseline seeds (0.8 + 0.3)/2 = 0.55 and (0.9 + 0.45)/2 = 0.675 -> 0.6125, SD 0.125/√2;
    # combined (0.97 + 0.85)/2; constant (0.4 + 0.2)/2
    assert "| mean of 2 tasks | normalised score | 0.300 | 0.613 ± 0.088 | 0.910 ± 0.000 | ≥ 0.80 |" in md
    assert "| constant (majority) | 0.100 |" in md
    assert "| `baseline` | 0.200 (1/2 collapsed) |" in md and "| `combined` | 0.800 |" in md
    assert "## Length" not in md  # no factor that changes only the length has run
    assert "2 CPUs, 1 cell(s) at a time with 1 torch thread each" in md
    study["machine"]["jobs"] = None  # a --finished-only report does not claim how the cells shared the cores
    assert "2 CPUs, cells read from earlier runs, each trained on 1 torch thread" in render(study)


def test_the_report_writes_the_data_root_as_a_placeholder(tmp_path):
    config = cell_config(FACTORS["cps_pool"], str(tmp_path.resolve()), ["fetal_head"], 100, 0, None, "/out")
    shown = recipe_study._with_root_placeholder(config, str(tmp_path))
    assert shown["data"]["unlabeled"] == ["fmc:{root}/train"] and str(tmp_path) not in json.dumps(shown)


def test_the_cps_factor_reads_the_roots_training_images_as_its_pool():
    config = cell_config(FACTORS["cps_pool"], "/data/public", ["fetal_head"], 100, 0, None, "/out")
    assert config["data"]["unlabeled"] == ["fmc:/data/public/train"]
    from m2dino.recipes import RunConfig

    run = RunConfig.from_dict(config)
    assert run.semi.method == "cps" and run.semi.weight == 0.1 and run.semi.partner == "mobilenetv3_small_100"


def test_a_preset_as_a_factor_keeps_the_studys_tasks_and_length():
    from recipe_study_parts.factors import Factor, preset_overrides

    overrides = preset_overrides("v2-unified-moe")
    assert overrides["model.moe_blocks"] == [2, 3] and overrides["train.lr"] == 0.002
    assert not {"recipe", "data.tasks", "train.steps", "train.warmup_steps"} & set(overrides)
    # study v2's preset is the study's baseline, except that the preset lets the CPU choose bf16 (auto)
    as_factor = cell_config(Factor("v2", "q", overrides), "/a", ["fetal_head"], 300, 1, None, "/out")
    baseline = cell_config(FACTORS["baseline"], "/a", ["fetal_head"], 300, 1, None, "/out")
    assert as_factor["train"].pop("mixed_precision") == "auto" and baseline["train"].pop("mixed_precision") == "no"
    assert as_factor == baseline


def test_the_long_preset_is_paired_with_the_long_baseline(tmp_path):
    args = recipe_study.parse_args(["--root", str(tmp_path), "--factors", "combined_x4", "--seeds", "0"])
    assert recipe_study.planned_cells(args) == [("baseline", 0), ("steps_x4", 0), ("combined_x4", 0)]
    long_preset = cell_config(FACTORS["combined_x4"], "/a", ["fetal_head"], 300, 0, None, "/out")
    preset = cell_config(FACTORS["combined"], "/a", ["fetal_head"], 1200, 0, None, "/out")
    assert long_preset == preset  # the preset at 4 x 300 steps is the preset at 1,200
    assert long_preset["train"]["warmup_steps"] == 60


def test_an_export_without_git_reports_its_commit_stamp(tmp_path):
    from recipe_study_parts.cell import git_commit

    assert git_commit(tmp_path) == "unknown"
    (tmp_path / "COMMIT").write_text("88bb7f7\n")
    assert git_commit(tmp_path) == "88bb7f7"
