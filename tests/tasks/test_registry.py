import json

import pytest

from m2dino.tasks import (
    TaskSpec,
    TaskType,
    UnknownTaskError,
    benchmark_groups,
    get_task,
    list_tasks,
    load_group_mapping,
    register_task,
    unregister_task,
)


def test_the_27_benchmark_tasks_with_their_types_and_groups():
    tasks = list_tasks()
    assert len(tasks) == 27
    counts = {t: len(list_tasks(type=t)) for t in TaskType}
    assert counts == {TaskType.SEGMENTATION: 12, TaskType.CLASSIFICATION: 9,
                      TaskType.DETECTION: 3, TaskType.REGRESSION: 3}
    groups = benchmark_groups()
    assert sorted(sum(groups.values(), ())) == sorted(t.id for t in tasks)
    assert [t.id for t in list_tasks(group="cervix")] == ["cervix", "cervix_multi", "FUGC"]


def test_spec_fields_follow_the_benchmark_table():
    assert get_task("cardiac_multi").num_classes == 4
    assert get_task("cardiac_multi").class_names[0] == "background"
    iugc = get_task("IUGC")
    assert iugc.type is TaskType.REGRESSION and iugc.num_keypoints == 3 and iugc.label_kind.name == "keypoints"
    assert get_task("thyroid_nodule_det").label_kind.name == "boxes"
    assert get_task("fetal_plane_cls").metrics == ("Accuracy", "F1_macro", "F1_weighted", "MCC", "AUC")
    hc = get_task("fetal_head_circumference")
    assert hc.is_scalar and hc.label_kind.name == "scalar" and not hc.benchmark


def test_left_right_position_tasks_forbid_horizontal_flips():
    assert not get_task("fetal_head_pos_cls").allows("hflip")
    assert not get_task("fetal_sacral_pos_cls").allows("hflip")
    assert get_task("fetal_head").allows("hflip")
    with pytest.raises(ValueError, match="unknown augmentation 'mirror'"):
        get_task("fetal_head").allows("mirror")


def test_unknown_id_lists_closest_ids():
    with pytest.raises(UnknownTaskError, match="unknown task id 'fetal_haed'; closest known ids: fetal_head"):
        get_task("fetal_haed")


def test_register_a_users_task_and_protect_it_from_silent_replacement():
    spec = TaskSpec(id="my_kidney", type="segmentation", num_classes=2, class_names=("bg", "kidney"),
                    organ="kidney", group="abdominal_other")
    try:
        register_task(spec)
        assert get_task("my_kidney") is spec
        assert spec in list_tasks(benchmark=False)
        assert spec not in list_tasks()
        register_task(spec)  # identical: fine
        other = TaskSpec(id="my_kidney", type="segmentation", num_classes=3, class_names=("bg", "a", "b"),
                         organ="kidney", group="abdominal_other")
        with pytest.raises(ValueError, match="already registered with a different spec"):
            register_task(other)
    finally:
        unregister_task("my_kidney")
    with pytest.raises(ValueError, match="benchmark task"):
        unregister_task("fetal_head")


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_classes=3, class_names=("a", "b")), "2 class_names for num_classes=3"),
    (dict(num_classes=1, class_names=("a",)), "needs num_classes >= 2"),
    (dict(num_classes=2, class_names=("a", "b"), augmentations={"warp"}), "unknown augmentations"),
    (dict(num_classes=2, class_names=("a", "b"), scalar_unit="mm"), "only valid for regression"),
])
def test_invalid_specs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec(id="bad", type="classification", organ="x", group="y", **kwargs)


def test_spec_round_trips_through_dict():
    spec = get_task("IUGC")
    assert TaskSpec.from_dict(spec.to_dict()) == spec
    # Checkpoints saved before the metrics came from the label kind list them; they still load.
    assert TaskSpec.from_dict({**spec.to_dict(), "metrics": ["MRE"]}) == spec
    with pytest.raises(ValueError, match="unknown fields"):
        TaskSpec.from_dict({**spec.to_dict(), "colour": "red"})


def test_user_group_mapping_from_json_and_yaml(tmp_path):
    good = tmp_path / "groups.yaml"
    good.write_text("heads: [fetal_head, head_symphysis_multi]\nbreast: [breast_lesion]\n")
    assert load_group_mapping(good) == {"heads": ("fetal_head", "head_symphysis_multi"),
                                        "breast": ("breast_lesion",)}
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"a": ["cervix"], "b": ["cervix"]}))
    with pytest.raises(ValueError, match="'cervix' is in both 'a' and 'b'"):
        load_group_mapping(dup)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"a": ["cervics"]}))
    with pytest.raises(ValueError, match="unknown.json: group 'a': unknown task id 'cervics'"):
        load_group_mapping(unknown)


def test_pocus_lung_classes_are_named_in_the_adapters_index_order():
    from m2dino.data.adapters.pocus import CLASSES

    assert get_task("lung_disease_3cls").class_names == CLASSES == ("covid", "pneumonia", "regular")
