"""Typed run configs: flags, YAML and Python build the same `RunConfig`; a run's run.yaml rebuilds its
config exactly; a bad field is one error naming it; training starts from Python and from `m2dino train`."""

import ast
import json
from pathlib import Path

import pytest

from m2dino import M2DINO
from m2dino.cli.main import main as m2dino
from m2dino.recipes import DataSettings, ModelSettings, PretrainConfig, RunConfig, TrainSettings, train
from m2dino.recipes.config_io import apply_overrides
from m2dino.recipes.flags import parse_recipe
from m2dino.recipes.pretraining import read_pretrain_yaml
from m2dino.training.checkpoint import CheckpointError
from m2dino.training.semi import SemiConfig

TINY_FLAGS = ["--backbone", "test", "--image-size", "32", "--batch-size", "2", "--steps", "2", "--eval-every", "2",
              "--decoder-features", "8", "--warmup-steps", "1", "--synthetic-per-task", "4", "--no-progress"]


def tiny(output_dir, **changes) -> RunConfig:
    return RunConfig(output_dir=str(output_dir),
                     data=DataSettings(tasks=["fetal_head", "breast_2cls"], synthetic_per_task=4),
                     model=ModelSettings(backbone="test", image_size=32, decoder_features=8),
                     train=TrainSettings(steps=2, batch_size=2, eval_every=2, warmup_steps=1, lr=2e-3,
                                         backbone_lr=1e-3), **changes)


def test_the_flags_defaults_are_the_configs_defaults():
    config, launch = parse_recipe("unified", None, [])
    assert config == RunConfig()
    assert (launch.resume, launch.overwrite, launch.progress) == (None, False, True)


def test_flags_and_yaml_describe_the_same_run():
    flags, _ = parse_recipe("grouped", None, TINY_FLAGS + ["--tasks", "fetal_head", "IUGC", "--moe-blocks", "",
                                                           "--groups", "g.yaml", "--output-dir", "out"])
    yaml_values = {"recipe": "grouped", "output_dir": "out", "groups": "g.yaml",
                   "data": {"tasks": ["fetal_head", "IUGC"], "synthetic_per_task": 4},
                   "model": {"backbone": "test", "image_size": 32, "decoder_features": 8, "moe_blocks": []},
                   "train": {"steps": 2, "batch_size": 2, "eval_every": 2, "warmup_steps": 1}}
    assert RunConfig.from_dict(yaml_values) == flags
    # the semi-supervised recipe is the unified one with a method and an unlabelled pool
    semi, _ = parse_recipe("semi_supervised", None, ["--semi", "cps", "--unlabeled", "rest", "--data-fraction", "0.5"])
    assert semi.recipe == "unified" and semi.semi == SemiConfig("cps") and semi.data.unlabeled == ["rest"]


def test_a_config_survives_yaml_exactly(tmp_path):
    config = RunConfig(output_dir=str(tmp_path), semi=SemiConfig("fixmatch", weight=0.5),
                       data=DataSettings(unlabeled=["rest", "fmc:/data/pool"], fraction=0.25),
                       model=ModelSettings(moe_blocks=(-2, -1)), train=TrainSettings(lr=3e-4, layer_decay=0.75))
    config.write(tmp_path)
    assert RunConfig.read(tmp_path / "run.yaml") == config
    assert RunConfig.read(tmp_path / "run.yaml", ["train.lr=0.01", "model.moe_blocks=1,2"]).train.lr == 0.01


@pytest.mark.parametrize("override, message", [
    ("train.lrr=1", "unknown field train.lrr; expected one of train.steps, "),
    ("train.steps=1.5", r"train.steps=1.5; expected int"),
    ("train.lr=fast", "train.lr='fast'; expected float"),
    ("model.moe_blocks=a,b", r"^run.yaml: model.moe_blocks='a,b'; expected tuple\[int, ...\]$"),
    ("recipe=joint", r"recipe='joint'; expected one of \('unified', 'grouped', 'task_specific'\)"),
    ("data.fraction=0", r"data.fraction must be in \(0, 1\], got 0.0"),
    ("semi.weight=1", "semi.method is required"),
    ("semi.method=cps", "needs both semi .* and data.unlabeled"),
    ("groups=g.yaml", "groups='g.yaml' applies to the grouped recipe, not 'unified'"),
    ("affinity_every=5000", "--affinity-every 5000: no measurement within --steps 2000"),
    ("train.steps", "--set 'train.steps': expected KEY=VALUE"),
])
def test_a_bad_field_is_one_error_naming_it(override, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(apply_overrides({}, [override]), "run.yaml")


@pytest.mark.parametrize("feature", ["two_stage_steps=100", "affinity_every=500", "train.lora_rank=4"])
def test_fsdp_refuses_what_needs_the_whole_model_mid_run(feature):
    with pytest.raises(ValueError, match=rf"train.distributed='fsdp' with {feature.split('=')[0]}: not supported"):
        RunConfig.from_dict(apply_overrides({}, ["train.distributed=fsdp", feature]), "run.yaml")
    assert RunConfig.from_dict(apply_overrides({}, [feature])).train.distributed == "ddp"  # fine without FSDP


def test_a_yaml_file_that_is_not_a_plain_mapping_is_refused_by_name(tmp_path):
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("train: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match=f"{tagged}: not a plain YAML config"):
        RunConfig.read(tagged)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=f"{listed}: expected a mapping of config fields, got list"):
        RunConfig.read(listed)


@pytest.mark.slow
def test_train_from_python_writes_a_run_yaml_that_rebuilds_its_config(tmp_path):
    config = tiny(tmp_path / "run")
    outcome = train(config, progress=False)
    assert outcome.interrupted is None and [r.name for r in outcome.runs] == ["unified"]
    assert RunConfig.read(tmp_path / "run" / "run.yaml") == config
    assert M2DINO.from_pretrained(tmp_path / "run").task_ids == ["fetal_head", "breast_2cls"]
    rows = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [r["task"] for r in rows] == ["fetal_head", "breast_2cls"]
    # a resume that the checkpoint refuses leaves the run's run.yaml as it was
    changed = tiny(tmp_path / "run")
    changed.train.lr = 0.5
    with pytest.raises(CheckpointError, match="train.lr: 0.002 there, 0.5 now"):
        train(changed, resume="latest", progress=False)
    assert RunConfig.read(tmp_path / "run" / "run.yaml") == config


@pytest.mark.slow
def test_m2dino_train_runs_a_yaml_config_with_overrides(tmp_path, capsys):
    tiny(tmp_path / "first", recipe="task_specific").write(tmp_path)
    out = tmp_path / "second"
    assert m2dino(["train", str(tmp_path / "run.yaml"), "--set", f"output_dir={out}", "--set",
                   "data.tasks=[fetal_head]", "--no-progress"]) == 0
    written = RunConfig.read(out / "run.yaml")
    assert written == RunConfig.read(tmp_path / "run.yaml", [f"output_dir={out}", "data.tasks=[fetal_head]"])
    assert written.recipe == "task_specific" and (out / "fetal_head" / "model.safetensors").is_file()
    assert "| fetal_head | fetal_head | segmentation | DSC |" in capsys.readouterr().out
    # the run's own run.yaml reproduces it; the same folder again needs --overwrite or --resume
    assert m2dino(["train", str(out / "run.yaml"), "--no-progress"]) == 2
    assert "is not empty (a previous run?)" in capsys.readouterr().err


def test_m2dino_train_prints_the_complete_config_and_refuses_bad_fields(capsys):
    assert m2dino(["train", "--set", "train.steps=5", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "steps: 5" in printed and "recipe: unified" in printed
    assert m2dino(["train", "--set", "model.top_k=three"]) == 2
    assert capsys.readouterr().err == "m2dino train: error: --set: model.top_k='three'; expected int\n"


def test_m2dino_pretrain_reads_a_yaml_config(tmp_path, capsys):
    config_file = tmp_path / "pretrain.yaml"
    config_file.write_text("backbone: test\nsteps: 3\ndata: [scans]\ncrops: {global_size: 32}\n")
    assert m2dino(["pretrain", str(config_file), "--set", "loss.prototypes=64", "--print-config"]) == 0
    config = read_pretrain_yaml(config_file, ["loss.prototypes=64"])
    assert config.crops.global_size == 32 and config.loss.prototypes == 64 and config.steps == 3
    assert isinstance(config, PretrainConfig) and "prototypes: 64" in capsys.readouterr().out


def test_only_the_cli_and_the_flags_module_use_argparse():
    """Library code takes typed configs: a Namespace is the command line's business alone."""
    package = Path(__file__).resolve().parents[2] / "m2dino"
    allowed = {package / "recipes" / "flags.py"}
    offenders = []
    for path in package.rglob("*.py"):
        if path in allowed or path.parent == package / "cli":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "argparse" for name in names):
                offenders.append(str(path.relative_to(package.parent)))
    assert offenders == []


@pytest.mark.parametrize("budget, cached", [(None, True), (0, False)])
def test_data_memory_cache_bytes_reaches_the_trainers_loader(tmp_path, budget, cached):
    """The default budget keeps a small training set decoded in memory; 0 decodes at every use."""
    from m2dino.recipes import DataSettings, ModelSettings, TrainSettings, train

    data = DataSettings(tasks=["fetal_head"], synthetic_per_task=4, num_workers=0,
                        **({} if budget is None else {"memory_cache_bytes": budget}))
    config = RunConfig(output_dir=str(tmp_path / "run"), data=data,
                       model=ModelSettings(backbone="test", image_size=32, decoder_features=8),
                       train=TrainSettings(steps=1, batch_size=2, eval_every=1, warmup_steps=0))
    seen = []
    train(config, progress=False, step_callback=lambda trainer, step: seen.append(
        type(trainer.loader.dataloader.dataset.cache).__name__))
    assert seen == (["MemoryCache"] if cached else ["NoneType"])
    with pytest.raises(ValueError, match="data.memory_cache_bytes must be >= 0"):
        RunConfig.from_dict(apply_overrides({}, ["data.memory_cache_bytes=-1"]))
