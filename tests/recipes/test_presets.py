"""Named presets (`m2dino.recipes.presets`): listed with their measured results, valid run configs,
trained from one command, and bad input (an unknown name, a preset and a CONFIG, tasks the data lacks)
as one line."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from m2dino.cli.main import main as m2dino_main
from m2dino.recipes import RunConfig, presets
from m2dino.recipes.flags import config_main
from m2dino.recipes.presets import get_preset, preset_names, presets_table


def _m2dino(capsys, *args: str) -> tuple[int, str]:
    """`m2dino ARGS` in this process (the subprocess start would cost more than the command): its exit
    status, argparse's included, and its stderr."""
    capsys.readouterr()
    try:
        status = m2dino_main(list(args))
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_a_valid_run_config_with_its_measured_result(name):
    preset = get_preset(name)
    config = RunConfig.from_dict(preset.run, f"preset {name}")
    assert config.data.tasks, "a preset names the tasks it was measured on"
    assert set(preset.expected) >= {"mean_test_score", "seeds", "train_time", "measured_by"}
    assert 0 < preset.expected["mean_test_score"] <= 1
    assert f"| `{name}` |" in presets_table()


def test_list_presets_prints_the_table(capsys):
    assert config_main("train", ["--list-presets"]) == 0
    out = capsys.readouterr().out
    assert "| `v2-unified-moe` |" in out and "0.682" in out


def test_print_config_starts_from_the_preset_and_applies_overrides(capsys):
    assert config_main("train", ["--preset", "v2-unified-moe", "--set", "train.steps=7", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    preset = get_preset("v2-unified-moe").run
    assert printed["train"]["steps"] == 7
    assert printed["model"]["moe_blocks"] == preset["model"]["moe_blocks"] == [2, 3]
    assert printed["data"]["tasks"] == preset["data"]["tasks"]


def test_an_unknown_preset_is_one_line_naming_the_presets(capsys):
    status, stderr = _m2dino(capsys, "train", "--preset", "best-ever")
    assert status == 2
    assert stderr.strip().splitlines() == [
        f"m2dino train: error: unknown preset 'best-ever'; the presets are: {', '.join(preset_names())}"]


def test_a_preset_and_a_config_file_together_are_refused(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("train: {steps: 3}\n")
    status, stderr = _m2dino(capsys, "train", str(config), "--preset", "v2-unified-moe")
    assert status == 2
    assert "give a CONFIG file or --preset, not both" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_preset_whose_tasks_the_data_lacks_is_one_line(tmp_path, capsys):
    root = tmp_path / "root"
    assert _m2dino(capsys, "data", "synth", str(root), "--per-task", "3", "--size", "48", "--splits", "train",
                   "--tasks", "fetal_head")[0] == 0
    status, stderr = _m2dino(capsys, "train", "--preset", "v2-unified-moe", "--set",
                             f"data.sources=[{root / 'train'}]", "--set", f"output_dir={tmp_path / 'run'}")
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "no training samples for tasks" in lines[0] and "breast_lesion" in lines[0]
    assert not (tmp_path / "run" / "run.yaml").exists()


@pytest.mark.parametrize("name", preset_names())
def test_the_preset_trains_end_to_end_from_one_command(tmp_path, capsys, name):
    out = tmp_path / "run"
    status, stderr = _m2dino(capsys, "train", "--preset", name, "--set", "data.synthetic_per_task=2",
                             "--set", "model.image_size=32", "--set", "train.steps=2", "--set", "train.warmup_steps=1",
                             "--set", "train.eval_every=2", "--set", f"output_dir={out}", "--no-progress")
    assert status == 0, stderr
    saved = RunConfig.read(out / "run.yaml")
    expected = RunConfig.from_dict(get_preset(name).run)
    # every model setting, the backbone's start too
    assert saved.model == dataclasses.replace(expected.model, image_size=32)
    assert saved.data.tasks == expected.data.tasks and saved.data.augment == expected.data.augment
    assert saved.train.lr == expected.train.lr and saved.train.class_balance == expected.train.class_balance
    assert saved.train.steps == 2
    assert (out / "model.safetensors").is_file()


def test_the_long_preset_is_public_mini_with_only_its_length_changed():
    short, long = get_preset("public-mini").run, get_preset("public-mini-long").run
    assert long["train"] == {**short["train"], "steps": 12000, "warmup_steps": 600, "eval_every": 12000,
                             "checkpoint_every": 1200}
    assert {k: v for k, v in long.items() if k != "train"} == {k: v for k, v in short.items() if k != "train"}


def _preset_folder(monkeypatch, tmp_path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    monkeypatch.setattr(presets, "_files", lambda: {p.stem: p for p in tmp_path.glob("*.yaml")})


def test_extends_merges_mappings_key_by_key_and_replaces_lists(monkeypatch, tmp_path):
    _preset_folder(monkeypatch, tmp_path, {
        "base": "description: b\nrun: {model: {backbone: mini, moe_blocks: [2, 3]}, train: {steps: 5, lr: 0.1}}\n",
        "child": "description: c\nextends: base\nrun: {model: {moe_blocks: [3]}, train: {steps: 9}}\n",
        "grandchild": "description: g\nextends: child\nrun: {train: {lr: 0.5}}\n"})
    assert get_preset("child").run == {"model": {"backbone": "mini", "moe_blocks": [3]},
                                       "train": {"steps": 9, "lr": 0.1}}
    assert get_preset("grandchild").run["train"] == {"steps": 9, "lr": 0.5}
    assert get_preset("grandchild").description == "g"
    assert get_preset("base").run["model"]["moe_blocks"] == [2, 3]  # the parent is not changed by reading a child


def test_an_extends_loop_or_an_unknown_parent_names_the_presets(monkeypatch, tmp_path):
    _preset_folder(monkeypatch, tmp_path, {"a": "description: a\nextends: b\nrun: {}\n",
                                           "b": "description: b\nextends: a\nrun: {}\n",
                                           "orphan": "description: o\nextends: nowhere\nrun: {}\n"})
    with pytest.raises(ValueError, match=r"preset 'a' extends itself: a -> b -> a"):
        get_preset("a")
    with pytest.raises(ValueError, match=r"preset 'orphan' extends 'nowhere', which is not a preset; the presets "
                                         r"are: a, b, orphan"):
        get_preset("orphan")
