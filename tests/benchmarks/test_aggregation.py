"""The aggregation study's planning (subsets, budgets, one-task models) and its report's statistics,
on hand-made inputs (the study itself needs the public datasets and hours of CPU)."""

import argparse
import json

import numpy as np
import pytest

import aggregation
from aggregation_parts.report import Scores, beyond_noise, claims, data_limited, write_report
from m2dino.data import Sample


def sample(task, dataset, name, label=0):
    return Sample(np.zeros((8, 8), np.uint8), task, label, source=f"/root/{task}/{name}.png",
                  meta={"dataset": dataset, "name": name})


def study_data():
    images = [f"img{i}" for i in range(20)]
    train = {"breast_3cls": [sample("breast_3cls", "busi", n) for n in images],
             # the lesion task has its own copies of the same images, and not all of them
             "breast_lesion": [sample("breast_lesion", "busi", n, np.zeros((8, 8), np.uint8)) for n in images[:15]],
             "fetal_plane_cls": [sample("fetal_plane_cls", "african_planes", f"p{i}") for i in range(30)]}
    return aggregation.StudyData(train, {t: v[:2] for t, v in train.items()},
                                 {"breast_3cls": "busi", "breast_lesion": "busi", "fetal_plane_cls": "african_planes"},
                                 {})


def test_a_fraction_keeps_or_drops_an_image_for_every_task_of_its_dataset():
    data = study_data()
    subset = aggregation.fraction_subset(data, list(data.train), 0.3, seed=0)
    cls = {s.meta["name"] for s in subset["breast_3cls"]}
    lesion = {s.meta["name"] for s in subset["breast_lesion"]}
    assert len(cls) == 6 and lesion == cls & {f"img{i}" for i in range(15)}
    assert len(subset["fetal_plane_cls"]) == 9
    other_seed = aggregation.fraction_subset(data, list(data.train), 0.3, seed=1)
    assert {s.meta["name"] for s in other_seed["breast_3cls"]} != cls
    assert (aggregation.fraction_subset(data, list(data.train), 1.0, seed=0)["breast_lesion"]
            == data.train["breast_lesion"])


def args(**kw):
    defaults = dict(moe_blocks="2,3", image_size=64, batch_size=16, backbone="mini", num_experts=4, top_k=1, alpha=0.0)
    return argparse.Namespace(**{**defaults, **kw})


def test_a_one_task_model_is_dense_so_its_moe_setting_is_the_same_run():
    data = study_data()
    one = {s: aggregation.run_signature(args(), ["breast_3cls"], 100, s, 0, data.train, data.val)
           for s in ("moe", "dense")}
    two = {s: aggregation.run_signature(args(), ["breast_3cls", "breast_lesion"], 200, s, 0, data.train, data.val)
           for s in ("moe", "dense")}
    assert one["moe"] == one["dense"] and one["moe"]["moe_blocks"] == ""
    assert two["moe"]["moe_blocks"] == "2,3" and two["dense"]["moe_blocks"] == ""


def test_a_one_task_model_has_one_folder_so_a_moe_only_part_finds_it_finished(tmp_path):
    data = study_data()
    study = args(fractions=[1.0], seeds=[0], paradigms=["task_specific", "grouped"], moe=["moe"], steps=300,
                 affinity_groups=None, output_dir=tmp_path)
    folders = {(m["paradigm"], m["name"]): m["out_dir"].relative_to(tmp_path).parts[:2]
               for m in aggregation.plan_study(study, data, list(data.train))}
    assert folders[("task_specific", "breast_3cls")] == ("f100", "dense")
    assert folders[("grouped", "breast")] == ("f100", "moe")


def test_every_paradigm_spends_the_same_budget_and_affinity_groups_come_from_the_file(tmp_path):
    tasks = ["breast_3cls", "breast_lesion", "fetal_plane_cls", "fetal_head"]
    groups_file = tmp_path / "groups.json"
    groups_file.write_text(json.dumps({"a": ["breast_3cls", "fetal_head"], "b": ["breast_lesion", "fetal_plane_cls"]}))
    for paradigm in ("task_specific", "grouped", "affinity", "unified"):
        plan = aggregation.plan_models(paradigm, tasks, 4000, str(groups_file))
        assert sum(steps for _, _, steps in plan) == 4000
        assert sorted(t for _, members, _ in plan for t in members) == sorted(tasks)
    assert [m for _, m, _ in aggregation.plan_models("affinity", tasks, 4000, str(groups_file))] == [
        ["breast_3cls", "fetal_head"], ["breast_lesion", "fetal_plane_cls"]]
    assert {n: m for n, m, _ in aggregation.plan_models("grouped", tasks, 4000)} == {
        "breast": ["breast_3cls", "breast_lesion"], "fetal": ["fetal_plane_cls", "fetal_head"]}


def test_affinity_paradigm_needs_its_file():
    with pytest.raises(SystemExit):
        aggregation.parse_args(["--paradigms", "affinity"])
    assert "affinity" in aggregation.parse_args(["--affinity-groups", "g.json"]).paradigms


# ---------------------------------------------------------------------------------- report
def row(task, kind, group, fraction, moe, paradigm, seed, score):
    return {"task": task, "type": kind, "group": group, "metric": "DSC", "value": score, "score": score,
            "model": paradigm, "fraction": fraction, "moe": moe, "paradigm": paradigm, "seed": seed, "steps": 10,
            "model_tasks": 1, "train_samples": 5}


def small_study():
    """Two breast tasks in one group and a lone nerve task; dense only; seeds 0, 1."""
    ts = {("breast_lesion", 0.1): (0.50, 0.52), ("breast_lesion", 1.0): (0.70, 0.71),
          ("breast_3cls", 0.1): (0.40, 0.50), ("breast_3cls", 1.0): (0.44, 0.48),
          ("nerve_vessel_seg", 0.1): (0.30, 0.31), ("nerve_vessel_seg", 1.0): (0.60, 0.61)}
    # grouped: -0.05 at 10 %, +0.02 at 100 % for both breast tasks, per seed exactly
    shift = {0.1: -0.05, 1.0: 0.02}
    kinds = {"breast_lesion": ("segmentation", "breast"), "breast_3cls": ("classification", "breast"),
             "nerve_vessel_seg": ("segmentation", "regional_anaesthesia")}
    rows = []
    for (task, fraction), values in ts.items():
        for seed, value in enumerate(values):
            kind, group = kinds[task]
            rows.append(row(task, kind, group, fraction, "dense", "task_specific", seed, value))
            grouped = value + (shift[fraction] if group == "breast" else 0.0)
            rows.append(row(task, kind, group, fraction, "dense", "grouped", seed, grouped))
            rows.append(row(task, kind, group, fraction, "dense", "unified", seed, value - 0.01))
    return {"settings": {"tasks": list(kinds), "fractions": [0.1, 1.0], "moe": ["dense"], "seeds": [0, 1],
                         "paradigms": ["task_specific", "grouped", "unified"], "affinity_groups": None,
                         "groups": {"breast": ["breast_lesion", "breast_3cls"],
                                    "regional_anaesthesia": ["nerve_vessel_seg"]},
                         "total_steps": 30, "image_size": 64, "batch_size": 16, "backbone": "mini", "alpha": 0.0,
                         "moe_blocks": "2,3", "num_experts": 4, "top_k": 1},
            "rows": rows,
            "constant_baseline": [{"task": t, "score": s} for t, s in
                                  (("breast_lesion", 0.0), ("breast_3cls", 0.40), ("nerve_vessel_seg", 0.05))],
            "datasets": {}, "models": [{"steps": 10, "seconds": 60.0, "cached": False, "same_as": None}],
            "command": "python benchmarks/aggregation.py", "git_commit": "abc",
            "machine": {"processor": "cpu", "cpus": 2, "torch_threads": 1, "torch": "2", "jobs": 2}}


def test_beyond_noise_is_twice_the_larger_sd_and_unknown_with_one_seed():
    assert beyond_noise([0.70, 0.71], [0.50, 0.52])       # gap 0.195 > 2 × 0.0141
    assert not beyond_noise([0.44, 0.48], [0.40, 0.50])   # gap 0.01 < 2 × 0.0707
    assert beyond_noise([0.5], [0.4, 0.41]) is None


def test_data_limited_counts_tasks_whose_full_data_beats_a_tenth_beyond_noise():
    entries = {e["task"]: e for e in data_limited(Scores(small_study()))}
    assert entries["breast_lesion"]["beyond_noise"] and entries["nerve_vessel_seg"]["beyond_noise"]
    assert not entries["breast_3cls"]["beyond_noise"]
    assert entries["breast_lesion"]["gain"] == pytest.approx(0.195)
    assert entries["breast_3cls"]["margin_over_constant"] == pytest.approx(0.06)


def test_claims_read_the_paired_deltas():
    study = small_study()
    found = {c["claim"][:5]: c for c in claims(study, Scores(study))}
    # grouped: exactly -0.05 at 10 % and +0.02 at 100 % on both seeds: SD 0, so beyond noise
    assert found["(i) G"]["verdict"] == "agrees"
    assert "100% +0.020 ± 0.000" in found["(i) G"]["measured"] and "10% -0.050 ± 0.000" in found["(i) G"]["measured"]
    # one multi-task group: no spread across groups to compare
    assert found["(ii) "]["verdict"] == "n/a"
    # |Δ|: segmentation (breast_lesion grouped 0.05/0.02, unified 0.01 ×2; nerve unified 0.01 ×2) vs
    # classification (grouped 0.05/0.02, unified 0.01 ×2)
    assert found["(iii)"]["verdict"] == "disagrees (classification is)"


def test_report_keeps_a_hand_written_interpretation(tmp_path):
    pytest.importorskip("matplotlib")
    study = small_study()
    write_report(study, tmp_path)
    md = (tmp_path / "aggregation.md").read_text()
    assert "2 of 3** tasks" in md and (tmp_path / "aggregation.png").is_file()
    from harness.report import PLACEHOLDER

    md = md.replace(PLACEHOLDER, "Grouping helps breast at 100 %.")
    (tmp_path / "aggregation.md").write_text(md)
    write_report(study, tmp_path)
    assert "Grouping helps breast at 100 %." in (tmp_path / "aggregation.md").read_text()
