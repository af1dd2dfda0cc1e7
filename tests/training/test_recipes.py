"""The three recipes end to end with tiny settings: on the synthetic suite and on an FMC root
written by the synthetic writer (what `m2dino data synth` produces)."""

import importlib
import json

import pytest

from m2dino import M2DINO
from m2dino.data.synthetic import write_synthetic

TINY = ["--backbone", "test", "--image-size", "32", "--batch-size", "2", "--steps", "2", "--eval-every", "2",
        "--decoder-features", "8", "--warmup-steps", "1", "--synthetic-per-task", "4", "--no-progress"]


def recipe(name):
    return importlib.import_module(f"m2dino.recipes.{name}").main


def test_unified_on_synthetic(tmp_path, capsys):
    recipe("unified")(TINY + ["--tasks", "fetal_head", "breast_2cls", "FUGC", "--output-dir", str(tmp_path)])
    assert M2DINO.from_pretrained(tmp_path).task_ids == ["fetal_head", "breast_2cls", "FUGC"]
    rows = json.loads((tmp_path / "summary.json").read_text())
    assert [r["task"] for r in rows] == ["fetal_head", "breast_2cls", "FUGC"]
    assert "| fetal_head | unified | segmentation | DSC |" in capsys.readouterr().out
    assert "![Predictions of this model on an example scan](example.png)" in (tmp_path / "README.md").read_text()
    assert (tmp_path / "example.png").is_file()


def test_unified_measures_task_affinity_and_its_grouping_feeds_the_grouped_recipe(tmp_path):
    tasks = ["fetal_head", "fetal_plane_cls", "breast_3cls", "breast_lesion"]
    steps = ["--steps", "4", "--eval-every", "4"]
    recipe("unified")(TINY + steps + ["--tasks", *tasks, "--moe-blocks", "", "--affinity-every", "2",
                                      "--output-dir", str(tmp_path / "u")])
    report = json.loads((tmp_path / "u" / "task_affinity.json").read_text())
    assert report["tasks"] == tasks and [m["step"] for m in report["measurements"]] == [2, 4]
    logged = (tmp_path / "u" / "task_affinity_measurements.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in logged] == report["measurements"]
    assert report["clinical"]["groups"] == {"fetal": tasks[:2], "breast": tasks[2:]}
    groups = json.loads((tmp_path / "u" / "task_affinity_groups.json").read_text())
    assert list(groups.values()) == report["recommended"]["2"]["groups"]
    out = tmp_path / "g"
    recipe("grouped")(TINY + ["--tasks", *tasks, "--groups", str(tmp_path / "u" / "task_affinity_groups.json"),
                              "--output-dir", str(out)])
    assert {r["model"] for r in json.loads((out / "summary.json").read_text())} == set(groups)


def test_affinity_flags_that_cannot_work_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="--affinity-every 5: no measurement within --steps 2"):
        recipe("unified")(TINY + ["--tasks", "fetal_head", "breast_3cls", "--affinity-every", "5",
                                  "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--affinity-groups 3: expected 1..2"):
        recipe("unified")(TINY + ["--tasks", "fetal_head", "breast_3cls", "--affinity-every", "1",
                                  "--affinity-groups", "3", "--output-dir", str(tmp_path)])


def test_grouped_with_a_users_mapping(tmp_path):
    groups = tmp_path / "groups.yaml"
    groups.write_text("heads: [fetal_head, head_symphysis_multi]\nbreast: [breast_3cls]\n")
    out = tmp_path / "runs"
    recipe("grouped")(TINY + ["--tasks", "fetal_head", "head_symphysis_multi", "breast_3cls", "--groups", str(groups),
                              "--output-dir", str(out)])
    assert M2DINO.from_pretrained(out / "heads").task_ids == ["fetal_head", "head_symphysis_multi"]
    assert M2DINO.from_pretrained(out / "breast").task_ids == ["breast_3cls"]
    assert {r["model"] for r in json.loads((out / "summary.json").read_text())} == {"heads", "breast"}


def test_grouped_by_registry_groups_and_task_specific_on_an_fmc_root(tmp_path):
    roots = write_synthetic(tmp_path / "fmc", per_task=4, image_size=48, tasks=["cervix", "FUGC", "lung_2cls"])
    out = tmp_path / "grouped"
    recipe("grouped")(TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]), "--output-dir", str(out)])
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["cardiothoracic", "cervix"]
    out = tmp_path / "specific"
    recipe("task_specific")(TINY + ["--data", str(roots["train"]), "--val-data", str(roots["val"]),
                                    "--output-dir", str(out)])
    rows = json.loads((out / "summary.json").read_text())
    assert sorted(r["model"] for r in rows) == ["FUGC", "cervix", "lung_2cls"]
    assert M2DINO.from_pretrained(out / "FUGC").task_ids == ["FUGC"]


def test_unknown_task_in_a_recipe_is_a_clear_error(tmp_path):
    with pytest.raises(KeyError, match="unknown task id 'fetal_haed'; closest known ids: fetal_head"):
        recipe("unified")(TINY + ["--tasks", "fetal_haed", "--output-dir", str(tmp_path)])
