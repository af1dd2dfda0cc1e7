"""Semi-supervised training in the shared engine, end to end on tiny hand-made data."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from m2dino import M2DINO
from m2dino.data import Sample
from m2dino.data.errors import DataError
from m2dino.data.unlabeled import UnlabeledSource
from m2dino.training import Trainer
from m2dino.training.semi import SemiConfig, UnlabeledBatches
from m2dino.training.semi.partner import CNNPartner, is_partner_folder
from m2dino.training.validation import evaluate_model

from ..fake_data import TASKS, fake_data, make_samples
from ..test_engine import config, tiny_model, weights


def unlabeled_pool(n: int = 6) -> UnlabeledSource:
    return UnlabeledSource.from_samples(make_samples("fetal_head", n, seed=5), "fake unlabelled scans")


def log_rows(folder):
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("method", ["mean-teacher", "fixmatch", "cps"])
def test_every_method_trains_all_task_kinds_with_unlabelled_images(tmp_path, method):
    train, val = fake_data(n_train=4, n_val=2)
    semi = SemiConfig(method, threshold=0.0 if method == "fixmatch" else None, rampup=0.0, partner="resnet10t")
    result = Trainer(tiny_model(), train, val, config(tmp_path, steps=5, batch_size=2), progress=False,
                     semi=semi, unlabeled=unlabeled_pool()).train()
    assert result.steps_done == 5
    steps = [r for r in log_rows(tmp_path) if "loss" in r]
    assert len({r["task"] for r in steps}) >= 3
    assert all(np.isfinite(r["unlabeled_loss"]) and r["semi_weight"] == semi.weight for r in steps)
    assert any(r["unlabeled_loss"] > 0 for r in steps)
    assert M2DINO.from_pretrained(tmp_path).config.training["steps"] == 5
    recorded = json.loads((tmp_path / "config.json").read_text())
    assert recorded["training"]["steps"] == 5
    if method == "cps":  # the partner is saved beside the model, reloads exactly and is scored
        assert all(r["partner_loss"] > 0 for r in steps)
        folder = tmp_path / "partner"
        assert is_partner_folder(folder) and not is_partner_folder(tmp_path)
        partner = CNNPartner.from_pretrained(folder)
        assert partner.task_ids == TASKS
        saved = json.loads((folder / "metrics.json").read_text())
        again = evaluate_model(partner, val, batch_size=2)
        assert saved["segmentation"]["fetal_head"]["DSC"] == pytest.approx(again["segmentation"]["fetal_head"]["DSC"])
    else:
        assert not (tmp_path / "partner").exists()


def test_fixmatch_above_every_confidence_learns_nothing_from_unlabelled_images(tmp_path):
    train, val = fake_data(tasks=["fetal_plane_cls"], n_train=4, n_val=2)
    Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path, steps=3, batch_size=2), progress=False,
            semi=SemiConfig("fixmatch", threshold=1.0), unlabeled=unlabeled_pool()).train()
    steps = [r for r in log_rows(tmp_path) if "loss" in r]
    assert all(r["confident"] == 0.0 and r["unlabeled_loss"] == 0.0 for r in steps)


@pytest.mark.parametrize("method", ["fixmatch", "cps"])
def test_resume_continues_exactly_teacher_partner_and_unlabelled_stream_included(tmp_path, method):
    train, val = fake_data(tasks=["fetal_head", "fetal_plane_cls"], n_train=4, n_val=2)
    semi = lambda: SemiConfig(method, threshold=0.0, rampup=0.5, partner="resnet10t")  # noqa: E731
    tasks = ["fetal_head", "fetal_plane_cls"]
    straight = Trainer(tiny_model(tasks), train, val, config(tmp_path / "a", steps=6, batch_size=2), progress=False,
                       semi=semi(), unlabeled=unlabeled_pool())
    straight.train()

    def stop_at_3(trainer, step):
        if step == 3:
            trainer.request_stop()

    first = Trainer(tiny_model(tasks), train, val, config(tmp_path / "b", steps=6, batch_size=2), progress=False,
                    semi=semi(), unlabeled=unlabeled_pool(), step_callback=stop_at_3).train()
    assert first.interrupted and first.steps_done == 3
    resumed = Trainer(tiny_model(tasks), train, val, config(tmp_path / "b", steps=6, batch_size=2), progress=False,
                      semi=semi(), unlabeled=unlabeled_pool(), resume="latest")
    resumed.train()
    whole = lambda t: weights(t.accelerator.unwrap_model(t.module))  # noqa: E731  model + teacher/partner
    a, b = whole(straight), whole(resumed)
    assert a.keys() == b.keys() and any(k.startswith("semi.") for k in a)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_resume_refuses_another_semi_supervised_setting(tmp_path):
    train, val = fake_data(tasks=["fetal_plane_cls"], n_train=4, n_val=2)
    trainer = Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path, steps=4, batch_size=2),
                      progress=False, semi=SemiConfig("fixmatch"), unlabeled=unlabeled_pool())
    trainer.save_checkpoint()
    with pytest.raises(Exception, match=r"train\.semi"):
        Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path, steps=4, batch_size=2),
                progress=False, semi=SemiConfig("mean-teacher"), unlabeled=unlabeled_pool(), resume="latest")


def write_png(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((40, 50)) * 255).astype(np.uint8)).save(path)
    return path


def test_unlabelled_images_that_are_validation_images_are_an_error_naming_them_unless_excluded(tmp_path):
    train, _ = fake_data(tasks=["fetal_plane_cls"], n_train=4)
    pool = tmp_path / "pool"
    for i in range(3):
        write_png(pool / f"scan_{i}.png", i)
    copied = write_png(tmp_path / "val" / "renamed.png", 1)  # same bytes as scan_1.png under another name
    val = {"fetal_plane_cls": [Sample(np.asarray(Image.open(copied)), "fetal_plane_cls", 0, source=str(copied))]}
    source = UnlabeledSource.from_folder(pool)
    with pytest.raises(DataError, match=r"1 unlabelled image\(s\) are also validation/test images: .*scan_1\.png "
                                        r"\(= .*renamed\.png\).*--unlabeled-overlap exclude"):
        Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path / "run"), progress=False,
                semi=SemiConfig("fixmatch"), unlabeled=source)
    trainer = Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path / "run2"), progress=False,
                      semi=SemiConfig("fixmatch"), unlabeled=source, unlabeled_overlap="exclude")
    assert len(trainer.unlabeled.batches.dataset) == 2


def test_semi_needs_both_a_method_and_images(tmp_path):
    train, val = fake_data(tasks=["fetal_plane_cls"], n_train=4)
    with pytest.raises(ValueError, match=r"needs both a method \(--semi\) and unlabelled images"):
        Trainer(tiny_model(["fetal_plane_cls"]), train, val, config(tmp_path), progress=False,
                semi=SemiConfig("fixmatch"))


def test_unlabelled_batches_are_the_models_own_preprocessing_and_resume_in_place(tmp_path):
    """Any size or aspect ratio of unlabelled scan reaches the model through its own size and resize policy."""
    pool = tmp_path / "pool"
    pool.mkdir()
    for i, shape in enumerate([(40, 90), (100, 30), (64, 64), (17, 33), (50, 50)]):
        Image.fromarray((np.random.default_rng(i).random(shape) * 255).astype(np.uint8)).save(pool / f"{i}.png")
    source = UnlabeledSource.from_folder(pool)
    model = tiny_model(["fetal_head"])
    batches = UnlabeledBatches(source, model.config.preprocessing, batch_size=2, seed=3)
    taken = [batches.next() for _ in range(3)]  # 2 batches per epoch: the third starts epoch 1
    order = np.random.default_rng([3, 0]).permutation(5)
    expected, _ = model.preprocess([source[int(i)].image for i in order[:2]])
    assert torch.equal(taken[0], expected)
    state = batches.state_dict()
    assert state == {"epoch": 1, "step": 1}
    following = batches.next()
    again = UnlabeledBatches(source, model.config.preprocessing, batch_size=2, seed=3)
    again.load_state_dict(state)
    assert torch.equal(again.next(), following)
