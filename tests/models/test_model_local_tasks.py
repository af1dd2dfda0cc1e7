"""A model holds its own task specs: building or loading one changes neither the caller's config nor
the global task registry, and a task only the checkpoint knows still predicts, saves and loads."""

import copy

import numpy as np
import pytest
import torch

from m2dino import M2DINO, TaskSpec, list_tasks

from .helpers import tiny_config, tiny_model

KIDNEY = TaskSpec(id="my_kidney_cls", type="classification", num_classes=2, class_names=("normal", "stone"),
                  organ="kidney", group="abdominal_other")


def _registry() -> list[TaskSpec]:
    return list_tasks(benchmark=None)


@pytest.fixture
def saved_custom_model(tmp_path):
    model = tiny_model(seed=1).add_task(KIDNEY)
    model.save_pretrained(tmp_path / "custom")
    return model, tmp_path / "custom"


def test_loading_a_model_with_its_own_task_leaves_the_registry_unchanged(saved_custom_model):
    before = _registry()
    _, folder = saved_custom_model
    loaded = M2DINO.from_pretrained(folder)
    assert _registry() == before
    assert loaded.task_spec("my_kidney_cls") == KIDNEY and loaded.task_specs["my_kidney_cls"] == KIDNEY


def test_construction_does_not_change_the_config_passed_in(saved_custom_model):
    config = tiny_config(tasks=["fetal_head", "IUGC"])
    before = copy.deepcopy(config)
    model = M2DINO(config)
    assert config == before and config.task_specs == {}
    assert set(model.config.task_specs) == {"fetal_head", "IUGC"}
    model.add_task(KIDNEY)
    model.select_tasks(["IUGC", "my_kidney_cls"])
    assert config == before
    saved = M2DINO.from_pretrained(saved_custom_model[1]).config
    again = copy.deepcopy(saved)
    M2DINO(saved)
    assert saved == again


def test_a_model_with_its_own_task_predicts_saves_and_loads(saved_custom_model, tmp_path):
    model, folder = saved_custom_model
    image = np.random.default_rng(0).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    expected = model.predict(image, task="my_kidney_cls")
    loaded = M2DINO.from_pretrained(folder)
    got = loaded.predict(image, task="my_kidney_cls")
    assert got.class_index == expected.class_index and np.allclose(got.probs, expected.probs, atol=1e-6)
    resaved = loaded.select_tasks(["my_kidney_cls"]).save_pretrained(tmp_path / "resaved")
    assert "my_kidney_cls" in (resaved / "README.md").read_text()
    single = M2DINO.from_pretrained(resaved)
    assert single.task_ids == ["my_kidney_cls"]
    with torch.no_grad():
        assert single(torch.zeros(1, 3, 32, 48), task="my_kidney_cls").logits.shape == (1, 2)


def test_a_checkpoint_spec_that_contradicts_the_registry_is_refused():
    config = copy.deepcopy(M2DINO(tiny_config(tasks=["fetal_plane_cls"])).config)
    config.task_specs["fetal_plane_cls"] = dict(config.task_specs["fetal_plane_cls"], num_classes=2,
                                                class_names=["a", "b"])
    with pytest.raises(ValueError, match="checkpoint's spec differs from the registered one"):
        M2DINO(config)
