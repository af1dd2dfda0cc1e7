"""The cps partner holds its own task specs, as `M2DINO` does: building one leaves the caller's
`PartnerConfig` unchanged, and a saved partner of a task the registry does not know loads and
answers that task's spec without touching the registry."""

import copy

from m2dino import TaskSpec, list_tasks
from m2dino.training.semi.partner import CNNPartner, PartnerConfig, is_partner_folder

KIDNEY = TaskSpec(id="my_kidney_cls", type="classification", num_classes=2, class_names=("normal", "stone"),
                  organ="kidney", group="abdominal_other")


def test_construction_does_not_change_the_config_passed_in():
    config = PartnerConfig(tasks=["fetal_head", "fetal_plane_cls"], encoder="resnet10t", width=16, decoder_features=8)
    before = copy.deepcopy(config)
    partner = CNNPartner(config)
    assert config == before and config.task_specs == {}
    assert partner.config is not config and set(partner.config.task_specs) == {"fetal_head", "fetal_plane_cls"}


def test_a_partner_with_its_own_task_saves_and_loads_without_the_registry(tmp_path):
    before = list_tasks(benchmark=None)
    config = PartnerConfig(tasks=["my_kidney_cls"], encoder="resnet10t", width=16, decoder_features=8,
                           task_specs={"my_kidney_cls": KIDNEY.to_dict()})
    CNNPartner(config).save_pretrained(tmp_path / "partner")
    assert is_partner_folder(tmp_path / "partner")
    loaded = CNNPartner.from_pretrained(tmp_path / "partner")
    assert loaded.task_spec("my_kidney_cls") == KIDNEY
    assert list_tasks(benchmark=None) == before
