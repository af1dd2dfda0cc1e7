"""The parity benchmark's own logic, without the organisers' script: the key-by-key comparison,
the seeded submissions and the committed report."""

import math

import numpy as np
import pytest

import official_parity
from harness.report import RESULTS, read_result
from m2dino.data.fmc import read_fmc_index
from m2dino.data.synthetic import write_synthetic


def theirs() -> dict:
    return {"segmentation": {"t_seg": {"DSC": 0.5, "HD": 10.0, "num_samples": 3,
                                       "per_class": {"class_0": {"DSC": 0.9, "HD": 1.0}}}},
            "classification": {"t_cls": {"AUC": math.nan, "MCC": 0.25, "num_samples": 2, "per_class": {}}}}


def ours() -> dict:
    return {"segmentation": {"t_seg": {"DSC": 0.5 + 1e-7, "HD": 10.0, "num_samples": 3,
                                       "per_class": {"class_0": {"DSC": 0.9, "HD": 1.0}}}},
            "classification": {"t_cls": {"AUC": None, "MCC": 0.25, "num_samples": 2, "per_class": {}}},
            "measurement": {"t_m": {"MAE": 1.0}},
            "summary": {"anything": 1}}


def test_identical_up_to_tolerance_and_null_for_nan():
    result = official_parity.compare_sections(ours(), theirs())
    assert result["compared"] == 9   # 5 segmentation leaves + AUC, MCC, num_samples, the empty per_class
    assert result["equal"] == 9 and result["differences"] == []
    assert result["max_abs_difference"] == pytest.approx(1e-7)
    assert result["ours_only"] == []   # measurement and summary are outside the compared sections


def test_differences_absent_keys_and_ours_only_keys_are_reported():
    mine = ours()
    mine["segmentation"]["t_seg"]["HD"] = 10.001
    mine["classification"]["t_cls"]["AUC"] = 0.0               # a number where they wrote NaN
    del mine["segmentation"]["t_seg"]["per_class"]["class_0"]["DSC"]
    mine["classification"]["t_cls"]["per_class"] = {"class_0": {"F1": 0.0}}
    result = official_parity.compare_sections(mine, theirs())
    assert result["equal"] == result["compared"] - 4
    assert {d["key"]: (d["ours"], d["theirs"]) for d in result["differences"]} == {
        "segmentation/t_seg/HD": (10.001, 10.0),
        "segmentation/t_seg/per_class/class_0/DSC": ("<absent>", 0.9),
        "classification/t_cls/AUC": (0.0, "NaN"),
        "classification/t_cls/per_class": ({"class_0": {"F1": 0.0}}, {}),
    }
    assert result["max_abs_difference"] == pytest.approx(0.001)
    assert result["ours_only"] == ["classification/t_cls/per_class/class_0/F1"]


def test_a_missing_section_is_all_differences():
    mine = ours()
    del mine["segmentation"]
    result = official_parity.compare_sections(mine, theirs())
    assert [d["key"] for d in result["differences"]][:1] == ["segmentation/t_seg/DSC"]
    assert len(result["differences"]) == 5


def test_values_match_rules():
    match = official_parity.values_match
    assert match(3, 3.0, 1e-6) and match(None, math.nan, 1e-6) and match(math.nan, math.nan, 1e-6)
    assert not match(None, 0.0, 1e-6) and not match(math.nan, 0.0, 1e-6) and not match(True, 1, 1e-6)
    assert not match(0.0, math.nan, 1e-6) and not match(1.0 + 2e-6, 1.0, 1e-6)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = write_synthetic(tmp_path_factory.mktemp("fmc"), per_task=4, image_size=32, splits=("val",),
                           tasks=["fetal_head", "breast_2cls", "breast_3cls", "organ_cls", "thyroid_nodule_det",
                                  "FUGC"])["val"]
    return read_fmc_index(root)


def _key(entries):
    return [(e.task_id, e.image_path, repr(e.prediction)) for e in entries]


def test_submissions_are_seeded_and_shaped_as_described(records):
    complete = official_parity.make_entries("complete", records, seed=0)
    assert _key(complete) == _key(official_parity.make_entries("complete", records, seed=0))
    assert _key(complete) != _key(official_parity.make_entries("complete", records, seed=1))
    assert len(complete) == len(records)
    for entry in complete:
        if hasattr(entry.prediction, "probs") and entry.prediction.probs is not None:
            assert entry.prediction.probs.sum() == pytest.approx(1.0)

    missing = official_parity.make_entries("missing", records, seed=0)
    # one task of each of the four kinds emptied: only two of the three classification tasks are left
    assert {e.task_id for e in missing} < {"breast_2cls", "breast_3cls", "organ_cls"}
    assert len({e.task_id for e in missing}) == 2
    assert len(missing) < len(records)

    absent = official_parity.make_entries("absent_classes", records, seed=0)
    labels = {r.image_path: r.label for r in records}
    small = [e for e in absent if e.task_id in ("breast_2cls", "breast_3cls")]
    assert small and all(labels[e.image_path] != 0 and e.prediction.class_index != 0 for e in small)

    resized = official_parity.make_entries("resized_masks", records, seed=0)
    sizes = {r.image_path: tuple(r.image_size) for r in records}
    masks = [e for e in resized if e.task_id == "fetal_head"]
    assert masks and all(e.prediction.mask.shape != sizes[e.image_path] for e in masks)


def test_committed_report_rerenders_from_its_json():
    result = read_result(RESULTS / "official_parity.json")
    assert official_parity.markdown(result) == (RESULTS / "official_parity.md").read_text()


def test_erase_a_class_empties_one_foreground_class_of_the_last_mask_per_task(tmp_path):
    root = write_synthetic(tmp_path, per_task=2, image_size=32, splits=("val",),
                           tasks=["fetal_head", "cardiac_multi"])["val"]
    before = {r.image_path: r.load_mask() for r in read_fmc_index(root)}
    assert official_parity.erase_a_class(read_fmc_index(root), seed=0) == 2
    changed = {}
    for record in read_fmc_index(root):
        old, new = before[record.image_path], record.load_mask()
        lost = set(np.unique(old)) - set(np.unique(new))
        if lost:
            assert len(lost) == 1 and 0 not in lost
            assert np.array_equal(new, np.where(old == lost.pop(), 0, old))
            changed[record.task_id] = record.image_path
    assert changed.keys() == {"fetal_head", "cardiac_multi"}
    assert all(path.endswith("_00001.png") for path in changed.values())
