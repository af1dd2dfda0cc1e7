"""Bad release input is one line naming the field, before any pretraining, training or file is written."""

from __future__ import annotations

import pytest

from m2dino.cli.main import main
from m2dino.release import NO_TOKEN, ReleaseConfig, check_release

from .conftest import TASKS, release_values, write_release_yaml


def _refused(tmp_path, capsys, values: dict, *extra: str) -> str:
    config = write_release_yaml(tmp_path / "release.yaml", values)
    assert main(["release", str(config), "--device", "cpu", "--quiet", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("m2dino release: error: "), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "release").exists()  # no work started
    return err


def test_a_task_missing_from_the_training_data(synthetic_roots, tmp_path, capsys):
    values = release_values(synthetic_roots, tmp_path)
    values["run"]["data"]["tasks"] = TASKS + ["breast_lesion"]
    err = _refused(tmp_path, capsys, values)
    assert "run.data.tasks" in err and "breast_lesion" in err and "not in the training data" in err


def test_a_task_missing_from_the_test_roots(synthetic_roots, tmp_path, capsys):
    from m2dino.data.synthetic import write_synthetic

    partial = write_synthetic(tmp_path / "partial", per_task=2, image_size=32, splits=("test",), tasks=TASKS[:1])
    capsys.readouterr()  # the writer's progress bar
    values = release_values(synthetic_roots, tmp_path, test={"synthetic": str(partial["test"])})
    err = _refused(tmp_path, capsys, values)
    assert "no test split holds" in err and "fetal_plane_cls" in err


def test_a_test_root_that_is_not_an_fmc_root(synthetic_roots, tmp_path, capsys):
    err = _refused(tmp_path, capsys, release_values(synthetic_roots, tmp_path, test={"synthetic": str(tmp_path)}))
    assert "test.synthetic" in err and "not an FMC_UIA root" in err


def test_a_permissive_licence_over_noncommercial_data(synthetic_roots, tmp_path, capsys):
    values = release_values(synthetic_roots, tmp_path, licenses={"synthetic": "CC-BY-NC-SA-4.0"}, license="MIT")
    err = _refused(tmp_path, capsys, values)
    assert "'MIT' is not non-commercial" in err and "synthetic (CC-BY-NC-SA-4.0)" in err


def test_an_unknown_example_scan(synthetic_roots, tmp_path, capsys):
    values = release_values(synthetic_roots, tmp_path, examples=[str(tmp_path / "nope.png")],
                            examples_credit="CC BY 4.0, someone")
    err = _refused(tmp_path, capsys, values)
    assert "examples: no such scan" in err and "nope.png" in err


def test_a_push_without_a_token(synthetic_roots, tmp_path, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    err = _refused(tmp_path, capsys, release_values(synthetic_roots, tmp_path), "--push", "org/name")
    assert err.endswith(NO_TOKEN)


def test_a_malformed_push_target(synthetic_roots, tmp_path, capsys):
    err = _refused(tmp_path, capsys, release_values(synthetic_roots, tmp_path), "--push", "just-a-name")
    assert "--push 'just-a-name'" in err and "org/name" in err


@pytest.mark.parametrize("change, message", [
    ({"name": "org/name"}, "name='org/name'"),
    ({"weights_dtype": "fp16"}, "weights_dtype='fp16'"),
    ({"licenses": {}}, "no licence for ['synthetic']"),
    ({"licenses": {"synthetic": "CC0-1.0", "hc18": "CC-BY-4.0"}}, "licences for ['hc18']"),
    ({"examples": ["a.png"]}, "examples_credit: required with examples"),
])
def test_release_config_fields(synthetic_roots, tmp_path, change, message):
    with pytest.raises(ValueError, match="release config: ") as err:
        ReleaseConfig.from_dict(release_values(synthetic_roots, tmp_path, **change))
    assert message in str(err.value)


def test_a_release_is_one_unified_model_with_named_tasks(synthetic_roots, tmp_path):
    values = release_values(synthetic_roots, tmp_path)
    values["run"]["recipe"] = "grouped"
    with pytest.raises(ValueError, match="run.recipe='grouped': a release is one model"):
        ReleaseConfig.from_dict(values)
    values = release_values(synthetic_roots, tmp_path)
    values["run"]["data"]["tasks"] = None
    with pytest.raises(ValueError, match="run.data.tasks: a release names its tasks"):
        ReleaseConfig.from_dict(values)


def test_pretraining_and_pretrained_weights_are_exclusive(synthetic_roots, tmp_path):
    values = release_values(synthetic_roots, tmp_path, pretrain={"backbone": "test", "data": ["x"]})
    values["run"]["model"]["pretrained"] = "timm/vit_small_patch16_dinov3.lvd1689m"
    with pytest.raises(ValueError, match="pretrain are both set"):
        ReleaseConfig.from_dict(values)


def test_an_occupied_release_folder_needs_overwrite(synthetic_roots, tmp_path):
    config = ReleaseConfig.from_dict(release_values(synthetic_roots, tmp_path))
    (tmp_path / "release").mkdir()
    (tmp_path / "release" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        check_release(config)
    tested, decision = check_release(config, overwrite=True)
    assert tested == {"synthetic": TASKS} and decision.license == "Apache-2.0"


def test_the_run_folder_may_not_sit_inside_the_release_folder(synthetic_roots, tmp_path):
    values = release_values(synthetic_roots, tmp_path)
    values["run"]["output_dir"] = str(tmp_path / "release" / "run")
    with pytest.raises(ValueError, match="is inside output_dir"):
        check_release(ReleaseConfig.from_dict(values))
