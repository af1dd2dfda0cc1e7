import numpy as np
import pytest
import torch
from PIL import Image

from m2dino import M2DINO, M2DINOConfig, get_task, list_tasks
from m2dino.models import ClassificationPrediction, DetectionPrediction, KeypointPrediction, SegmentationPrediction

from .helpers import FOUR_TYPES, assert_outputs_equal, tiny_model


def test_the_issue_api_builds_all_27_tasks_with_typed_outputs():
    config = M2DINOConfig(backbone="test", tasks=[t.id for t in list_tasks()], moe_blocks=(2, 3),
                          num_experts=8, top_k=2, decoder_features=8, image_size=32)
    model = M2DINO(config).eval()
    assert len(model.heads) == 27
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        seg = model(x, task="cardiac_multi")
        cls = model(x, task="organ_cls")
        det = model(x, task="uterine_fibroid_det")
        reg = model(x, task="IUGC")
    assert seg.logits.shape == (2, 4, 32, 32)
    assert cls.logits.shape == (2, 6)
    assert det.heatmap_logits.shape == (2, 1, 8, 8)
    assert reg.keypoints.shape == (2, 3, 2)
    loss = model.loss(seg, torch.zeros(2, 32, 32, dtype=torch.long), task="cardiac_multi")
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_predict_accepts_paths_pil_and_arrays_of_any_size(tmp_path):
    model = tiny_model()
    gray = (np.random.default_rng(0).random((70, 130)) * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "scan.png")
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    by_path = model.predict(tmp_path / "scan.png", task="fetal_head")
    by_array = model.predict(gray, task="fetal_head")
    by_pil = model.predict(Image.fromarray(rgb), task="fetal_head")
    assert isinstance(by_path, SegmentationPrediction) and by_path.mask.shape == (70, 130)
    np.testing.assert_array_equal(by_path.mask, by_array.mask)
    np.testing.assert_array_equal(by_path.mask, by_pil.mask)
    cls = model.predict(gray, task="fetal_plane_cls")
    assert isinstance(cls, ClassificationPrediction) and cls.probs.shape == (6,)
    assert cls.probs.sum() == pytest.approx(1.0, abs=1e-5) and cls.class_index == int(cls.probs.argmax())
    det = model.predict(gray, task="thyroid_nodule_det", top_n=3)
    assert isinstance(det, DetectionPrediction) and det.boxes.shape == (3, 4)
    assert (det.boxes[:, 0::2] <= 130).all() and (det.boxes[:, 1::2] <= 70).all() and (det.boxes >= 0).all()
    kp = model.predict([gray, gray], task="IUGC")
    assert isinstance(kp[0], KeypointPrediction) and kp[0].points.shape == (3, 2)
    np.testing.assert_allclose(kp[0].points, kp[1].points, atol=1e-6)


def test_predict_all_equals_one_task_at_a_time():
    model = tiny_model()
    image = (np.random.default_rng(1).random((40, 60, 3)) * 255).astype(np.uint8)
    everything = model.predict_all(image)
    assert list(everything) == FOUR_TYPES
    for task in FOUR_TYPES:
        single = model.predict(image, task=task)
        for name, value in vars(single).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_allclose(getattr(everything[task], name), value, atol=1e-4)


def test_extract_task_gives_the_same_outputs_with_fewer_parameters():
    model = tiny_model(num_experts=4, top_k=2)
    x = torch.randn(2, 3, 32, 48)
    for task in FOUR_TYPES:
        dense = model.extract_task(task)
        assert dense.task_ids == [task] and dense.moe_blocks == () and dense.config.collapsed_moe == {2: 2, 3: 2}
        assert sum(p.numel() for p in dense.parameters()) < sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            assert_outputs_equal(dense(x, task=task), model(x, task=task))


def test_extract_task_with_token_routing_keeps_the_router():
    model = tiny_model(routing="task+token")
    dense = model.extract_task("IUGC")
    assert dense.moe_blocks == (2, 3) and dense.task_ids == ["IUGC"]
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        assert_outputs_equal(dense(x, task="IUGC"), model(x, task="IUGC"))


def test_tasks_not_in_the_model_are_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="task 'cervix' is not one of this model's 4 tasks"):
        model(torch.zeros(1, 3, 32, 48), task="cervix")
    with pytest.raises(KeyError, match="closest known ids: fetal_head"):
        model(torch.zeros(1, 3, 32, 48), task="fetal_haed")
    with pytest.raises(ValueError, match="3 task ids for a batch of 2 images"):
        model(torch.zeros(2, 3, 32, 48), task=["IUGC"] * 3)


def test_scalar_task_predicts_in_its_unit():
    model = tiny_model(tasks=["fetal_head_circumference"], moe_blocks=())
    model.heads["fetal_head_circumference"].set_target_stats(170.0, 40.0)
    prediction = model.predict(np.zeros((48, 48), np.uint8), task="fetal_head_circumference")
    assert prediction.unit == "mm" and 0 < prediction.value < 400
    assert get_task("fetal_head_circumference").is_scalar
