"""Frozen backbone + linear probe, how a backbone release and `benchmarks/pretraining.py` measure what a
backbone's features hold: pooled features [CLS ‖ mean patch token] of every image of a classification
task's FMC root, then a standardised logistic regression fit on a seeded 80 % of the train split, its C
chosen on the val split, scored on the test split (accuracy and macro F1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from ..data import read_fmc_index
from ..models import M2DINO, M2DINOConfig
from ..models.heads import pooled_features

SPLITS = ("train", "val", "test")
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
PROBE_TRAIN_FRACTION = 0.8


@dataclass
class ProbeData:
    """One task's images of every split, preprocessed once (normalised model input) with their labels."""

    task: str
    pixels: dict[str, torch.Tensor]
    labels: dict[str, np.ndarray]


def build_backbone_model(task: str, weights: str | None, seed: int, image_size: int, backbone: str = "mini") -> M2DINO:
    """The model as the recipes build it (``torch.manual_seed(seed)`` first): with ``weights`` None the
    seed decides the random backbone, so random-init cells vary the backbone with the seed."""
    torch.manual_seed(seed)
    config = M2DINOConfig(backbone=backbone, tasks=[task], moe_blocks=(), image_size=(image_size, image_size))
    return M2DINO(config, backbone_weights=weights).eval()


def load_probe_data(root, task: str, preprocess, limit: int | None = None, batch: int = 64) -> ProbeData:
    """``preprocess``: a model's `M2DINO.preprocess` (letterbox to the input size, normalise). ``limit``
    keeps every k-th image of a split (a --quick run), so all classes stay in."""
    pixels, labels = {}, {}
    for split in SPLITS:
        records = read_fmc_index(root / split, [task])
        if limit and len(records) > limit:
            records = records[:: len(records) // limit][:limit]
        files = [str(r.image_file) for r in records]
        pixels[split] = torch.cat([preprocess(files[i:i + batch])[0] for i in range(0, len(files), batch)])
        labels[split] = np.array([int(r.label) for r in records])
    return ProbeData(task, pixels, labels)


@torch.no_grad()
def extract(model: M2DINO, data: ProbeData, batch: int = 64) -> dict[str, np.ndarray]:
    """Pooled features of every split."""
    out = {}
    for split, pixels in data.pixels.items():
        parts = [pooled_features(model.forward_features(pixels[i:i + batch], data.task))
                 for i in range(0, len(pixels), batch)]
        out[split] = torch.cat(parts).float().numpy()
    return out


def fit_probe(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], seed: int) -> dict:
    """Logistic regression on a stratified ``PROBE_TRAIN_FRACTION`` of train (drawn by ``seed``), C by val
    accuracy (the smallest C on ties), test accuracy and macro F1."""
    x, y = features["train"], labels["train"]
    keep, _ = train_test_split(np.arange(len(y)), train_size=PROBE_TRAIN_FRACTION, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x[keep])
    scaled = {split: scaler.transform(f) for split, f in features.items()}
    best = None
    for c in PROBE_CS:
        model = LogisticRegression(C=c, max_iter=5000).fit(scaled["train"][keep], y[keep])
        val = accuracy_score(labels["val"], model.predict(scaled["val"]))
        if best is None or val > best[0]:
            best = (val, c, model)
    val_accuracy, c, model = best
    predicted = model.predict(scaled["test"])
    return {"accuracy": float(accuracy_score(labels["test"], predicted)),
            "macro_f1": float(f1_score(labels["test"], predicted, average="macro")),
            "val_accuracy": float(val_accuracy), "C": c, "train_images": len(keep),
            "test_images": len(labels["test"])}
