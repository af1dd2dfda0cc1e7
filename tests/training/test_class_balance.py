"""Countering majority collapse of the classification tasks: class-weighted and label-smoothed
cross-entropy (values by hand and against torch), the weights from class counts, the head's options
(saved models load unchanged), what training sets from the run config, and the config's fields."""

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from m2dino import M2DINO
from m2dino.cli.main import main as m2dino
from m2dino.data import Sample
from m2dino.data.collection import LazySample, SampleCollection
from m2dino.models.heads.classification import ClassificationHead
from m2dino.models.losses import class_balanced_weights, classification_loss
from m2dino.recipes import RunConfig
from m2dino.recipes.config_io import apply_overrides
from m2dino.recipes.flags import parse_recipe
from m2dino.training import TrainConfig, Trainer
from m2dino.training.trainer_model import class_labels, prepare_model

from .fake_data import make_samples
from .test_engine import tiny_model

BUNDLED = Path(__file__).parents[2] / "m2dino" / "models" / "bundled" / "m2dino-mini-ccby"
LOGITS = [[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
LABELS = [0, 2]
WEIGHTS = [0.5, 1.0, 2.0]


def nll(row: list[float], c: int) -> float:
    """-log softmax(row)[c], by hand."""
    return math.log(sum(math.exp(v) for v in row)) - row[c]


def loss(weights=None, smoothing=0.0) -> float:
    w = None if weights is None else torch.tensor(weights)
    return classification_loss(torch.tensor(LOGITS), torch.tensor(LABELS), w, smoothing).item()


def test_weighted_cross_entropy_is_the_weighted_mean_of_the_sample_losses():
    by_hand = (0.5 * nll(LOGITS[0], 0) + 2.0 * nll(LOGITS[1], 2)) / (0.5 + 2.0)
    assert loss(WEIGHTS) == pytest.approx(by_hand, rel=1e-6)
    assert loss() == pytest.approx((nll(LOGITS[0], 0) + nll(LOGITS[1], 2)) / 2, rel=1e-6)
    # equal weights of any size change nothing: the mean is divided by the weights it used
    assert loss([3.0, 3.0, 3.0]) == pytest.approx(loss(), rel=1e-6)


def test_smoothed_cross_entropy_targets_one_minus_eps_plus_eps_over_c():
    eps = 0.1
    per_sample = [(1 - eps) * nll(row, y) + eps / 3 * sum(nll(row, c) for c in range(3))
                  for row, y in zip(LOGITS, LABELS)]
    assert loss(smoothing=eps) == pytest.approx(sum(per_sample) / 2, rel=1e-6)
    # weights and smoothing together: each class's term carries its weight, over the labels' summed weights
    both = sum((1 - eps) * WEIGHTS[y] * nll(row, y) + eps / 3 * sum(WEIGHTS[c] * nll(row, c) for c in range(3))
               for row, y in zip(LOGITS, LABELS)) / (WEIGHTS[0] + WEIGHTS[2])
    assert loss(WEIGHTS, eps) == pytest.approx(both, rel=1e-6)
    reference = F.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS), weight=torch.tensor(WEIGHTS),
                                label_smoothing=eps)
    assert loss(WEIGHTS, eps) == pytest.approx(reference.item(), rel=1e-6)
    with pytest.raises(ValueError, match=r"class weights of shape \(2,\); expected \(3,\)"):
        loss([1.0, 2.0])


def test_class_weights_from_counts_inverse_frequency_and_effective_number():
    # β = 1: 1/n, an absent class counted once, scaled to mean 1 over the classes
    assert class_balanced_weights([100, 25, 0]).tolist() == pytest.approx([0.01 * 3 / 1.05, 0.04 * 3 / 1.05,
                                                                           1 * 3 / 1.05])
    # β = 0.9, counts 1 and 2: (1-β)/(1-β^n) = 1 and 0.1/0.19, scaled to mean 1
    raw = [1.0, 0.1 / 0.19]
    assert class_balanced_weights([1, 2], beta=0.9).tolist() == pytest.approx([2 * r / sum(raw) for r in raw])
    # β → 1 tends to inverse frequency; a small β flattens the weights towards equal
    assert class_balanced_weights([400, 100], beta=1 - 1e-9).tolist() == pytest.approx([0.4, 1.6], rel=1e-5)
    assert class_balanced_weights([400, 100], beta=0.5).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match=r"class-balance beta must be in \(0, 1\], got 0"):
        class_balanced_weights([1, 2], beta=0)
    with pytest.raises(ValueError, match="non-negative numbers, got \\[3, -1\\]"):
        class_balanced_weights([3, -1])


def test_the_head_applies_its_options_and_validates_them():
    head = ClassificationHead(4, 3)
    output = type("Out", (), {"logits": torch.tensor(LOGITS)})()
    targets = torch.tensor(LABELS)
    assert head.loss(output, targets).item() == pytest.approx(loss(), rel=1e-6)
    head.set_loss_options(torch.tensor(WEIGHTS), 0.1)
    assert head.loss(output, targets).item() == pytest.approx(loss(WEIGHTS, 0.1), rel=1e-6)
    head.set_loss_options()  # back to plain cross-entropy
    assert head.class_weights is None and head.loss(output, targets).item() == pytest.approx(loss(), rel=1e-6)
    with pytest.raises(ValueError, match=r"class_weights must be 3 positive numbers, got \[1.0, 0.0, 1.0\]"):
        head.set_loss_options(torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\), got 1"):
        head.set_loss_options(label_smoothing=1)


def test_a_model_saved_before_the_options_loads_unchanged_and_the_options_are_not_saved(tmp_path):
    saved = load_file(BUNDLED / "model.safetensors")  # released before these options existed
    model = M2DINO.from_pretrained(BUNDLED)
    head = model.heads["fetal_plane_cls"]
    assert head.class_weights is None and head.label_smoothing == 0.0
    head.set_loss_options(torch.ones(head.linear.out_features) * 2, 0.2)
    state = model.state_dict()
    assert set(state) == set(saved) and all(torch.equal(state[k], saved[k]) for k in saved)
    model.save_pretrained(tmp_path)
    assert set(load_file(tmp_path / "model.safetensors")) == set(saved)
    assert M2DINO.from_pretrained(tmp_path).heads["fetal_plane_cls"].class_weights is None


def _undecodable(task: str, label: int) -> LazySample:
    def load():
        raise AssertionError("counting classes decoded an image")
    return LazySample(task, f"index:{label}", load, label=label)


@pytest.mark.parametrize("balance, smoothing", [("loss", 0.0), ("none", 0.1), ("sampling", 0.0)])
def test_prepare_model_sets_the_classification_heads_from_the_index_labels(tmp_path, balance, smoothing):
    labels = [0, 0, 0, 0, 1, 1, 2, 3]  # fetal_plane_cls has 6 classes; 4 and 5 are absent
    samples = {"fetal_plane_cls": SampleCollection(_undecodable("fetal_plane_cls", y) for y in labels),
               "fetal_head_circumference": make_samples("fetal_head_circumference", 4)}
    model = tiny_model(["fetal_plane_cls", "fetal_head_circumference"])
    model.heads["fetal_plane_cls"].set_loss_options(torch.ones(6), 0.3)  # a reused model: replaced, not kept
    config = TrainConfig(output_dir=str(tmp_path), class_balance=balance, label_smoothing=smoothing)
    prepare_model(model, config, samples)
    head = model.heads["fetal_plane_cls"]
    expected = class_balanced_weights([4, 2, 1, 1, 0, 0]) if balance == "loss" else None
    assert (head.class_weights is None) == (expected is None)
    if expected is not None:
        assert head.class_weights.tolist() == pytest.approx(expected.tolist())
    assert head.label_smoothing == smoothing
    assert model.config.training["class_balance"] == balance and model.config.training["label_smoothing"] == smoothing
    assert class_labels(model, samples) == {"fetal_plane_cls": labels}


@pytest.mark.parametrize("override, message", [
    ("train.class_balance=weights", r"^run.yaml: class_balance='weights'; expected one of "
                                    r"\('none', 'sampling', 'loss'\)$"),
    ("train.label_smoothing=1", r"^run.yaml: label_smoothing must be in \[0, 1\), got 1.0$"),
    ("train.label_smoothing=-0.1", r"^run.yaml: label_smoothing must be in \[0, 1\), got -0.1$"),
    ("train.class_balance_beta=0", r"^run.yaml: class_balance_beta must be in \(0, 1\], got 0.0$"),
    ("train.class_balance_beta=0.99", r"^run.yaml: class_balance_beta=0.99 is used only with "
                                      r"class_balance='loss', got class_balance='none'$"),
])
def test_a_bad_setting_is_one_line_naming_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(apply_overrides({}, [override]), "run.yaml")


def test_the_settings_round_trip_through_run_yaml_and_match_the_flags(tmp_path):
    train = replace(RunConfig().train, class_balance="loss", class_balance_beta=0.999, label_smoothing=0.1)
    config = RunConfig(output_dir=str(tmp_path), train=train)
    config.write(tmp_path)
    text = (tmp_path / "run.yaml").read_text()
    for line in ("class_balance: loss", "class_balance_beta: 0.999", "label_smoothing: 0.1"):
        assert f"\n  {line}\n" in text
    assert RunConfig.read(tmp_path / "run.yaml") == config
    flags, _ = parse_recipe("unified", None, ["--class-balance", "loss", "--class-balance-beta", "0.999",
                                              "--label-smoothing", "0.1", "--output-dir", str(tmp_path)])
    assert flags == config
    sampling = RunConfig.from_dict(apply_overrides({}, ["train.class_balance=sampling"]), "run.yaml")
    assert sampling.train.class_balance == "sampling"


def test_m2dino_train_takes_the_settings_from_set(capsys):
    assert m2dino(["train", "--set", "train.class_balance=loss", "--set", "train.label_smoothing=0.05",
                   "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "class_balance: loss\n" in printed and "label_smoothing: 0.05\n" in printed


def test_a_run_with_class_balanced_sampling_draws_the_classes_evenly(tmp_path):
    labels = [0] * 7 + [1, 2, 3, 4, 5]  # a majority class a model could answer everywhere
    samples = [Sample(s.image, s.task, y, source=s.source)
               for s, y in zip(make_samples("fetal_plane_cls", 12), labels)]
    config = TrainConfig(output_dir=str(tmp_path), steps=2, batch_size=4, eval_every=1000, warmup_steps=1,
                         class_balance="sampling", label_smoothing=0.1)
    trainer = Trainer(tiny_model(["fetal_plane_cls"]), {"fetal_plane_cls": samples},
                      {"fetal_plane_cls": make_samples("fetal_plane_cls", 4)}, config, progress=False)
    drawn = Counter()
    for epoch in range(40):
        trainer.sampler.set_epoch(epoch)
        drawn.update(labels[i] for _, indices in trainer.sampler.plan() for i in indices)
    assert max(drawn.values()) - min(drawn.values()) <= 0.1 * sum(drawn.values()) / 6
    trainer.sampler.set_epoch(0)
    assert trainer.train().steps_done == 2
    assert M2DINO.from_pretrained(tmp_path).config.training["class_balance"] == "sampling"
