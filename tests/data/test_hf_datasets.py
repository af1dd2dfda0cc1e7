import datasets
import numpy as np
import pytest

from m2dino.data import DataError, Sample
from m2dino.data.hf_datasets import from_hf_dataset, to_hf_dataset

from .helpers import gray, rgb


def _samples() -> list[Sample]:
    mask = np.zeros((12, 16), np.uint8)
    mask[2:6, 3:9] = 2
    return [Sample(gray(12, 16, 0), "cervix_multi", mask, source="a.png", meta={"patient": "p1"}),
            Sample(rgb(12, 16, 1), "cervix_multi", np.zeros((12, 16), np.uint8), source="b.png"),
            Sample(rgb(10, 14, 2), "organ_cls", 5, source="c.png"),
            Sample(rgb(10, 14, 3), "uterine_fibroid_det", [[1.5, 2.0, 7.25, 9.0]], source="d.png"),
            Sample(rgb(10, 14, 4), "IUGC", [[1, 2], [3.5, 4], [5, 6.125]], source="e.png"),
            Sample(rgb(10, 14, 5), "fetal_head_circumference", 123.5, source="f.png")]


@pytest.mark.parametrize("task", ["cervix_multi", "organ_cls", "uterine_fibroid_det", "IUGC",
                                  "fetal_head_circumference"])
def test_local_parquet_round_trip(tmp_path, task):
    originals = [s for s in _samples() if s.task == task]
    dataset = to_hf_dataset(_samples(), task)
    assert len(dataset) == len(originals) and isinstance(dataset.features["image"], datasets.Image)
    dataset.to_parquet(str(tmp_path / "part.parquet"))
    back = from_hf_dataset(datasets.Dataset.from_parquet(str(tmp_path / "part.parquet"),
                                                         cache_dir=str(tmp_path / "cache")))
    for original, copy in zip(originals, back, strict=True):
        assert copy.task == task and np.array_equal(copy.image, original.image)
        assert np.array_equal(np.asarray(copy.label), np.asarray(original.label))
        assert copy.original_size == original.original_size and copy.source == original.source
        assert copy.meta == original.meta


def test_class_label_feature_uses_the_registry_names():
    dataset = to_hf_dataset(_samples(), "organ_cls")
    assert dataset.features["label"].names == [f"organ_{k}" for k in range(6)]
    assert isinstance(to_hf_dataset(_samples(), "cervix_multi").features["label"], datasets.Image)


def test_errors():
    with pytest.raises(DataError, match="no samples of task 'lung' to export"):
        to_hf_dataset(_samples(), "lung")
    with pytest.raises(DataError, match="dataset lacks column"):
        from_hf_dataset(datasets.Dataset.from_dict({"image": [1]}))
