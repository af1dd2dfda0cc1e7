"""What the pool pass measures per image: its predictive entropy under the model, and a feature
vector to compare images by (`FEATURES`): ``pixels``, the gray image downsampled to a fixed
square (the SSL-EGAD reference compares the images themselves), or ``backbone``, the model's
pooled embedding [CLS ‖ mean patch token] for the task (its routed MoE experts included)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.unlabeled import UnlabeledSource
from ..models.heads.base import pooled_features
from .uncertainty import predictive_entropy

FEATURES = ("pixels", "backbone")
PIXEL_SIZE = 64  # side of the downsampled gray image: 4,096 values, enough to tell scans apart


def pixel_features(image: np.ndarray, size: int = PIXEL_SIZE) -> np.ndarray:
    """A uint8 H×W×3 image as gray values in [0, 1], resized to size×size, flattened."""
    gray = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("L").resize((size, size), Image.BILINEAR)
    return np.asarray(gray, dtype=np.float64).ravel() / 255.0


@dataclass(frozen=True)
class Measured:
    entropy: np.ndarray | None   # (n,)
    features: np.ndarray | None  # n×d


@torch.no_grad()
def measure(model: torch.nn.Module, images: UnlabeledSource, task: str, kind: str, entropy: bool,
            features: str | None, batch_size: int = 8, progress: bool = False, desc: str = "pool") -> Measured:
    """Entropy (if asked) and ``features`` (``pixels``, ``backbone`` or None) of every image, in order."""
    if features not in (*FEATURES, None):
        raise ValueError(f"unknown features {features!r}; expected one of: {', '.join(FEATURES)}")
    run_model = entropy or features == "backbone"
    entropies: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    bar = tqdm(total=len(images), desc=desc, unit="img", disable=not progress)
    for start in range(0, len(images), batch_size):
        batch: Sequence[np.ndarray] = [images[i].image for i in range(start, min(start + batch_size, len(images)))]
        if features == "pixels":
            vectors.append(np.stack([pixel_features(image) for image in batch]))
        if run_model:
            pixel_values, _ = model.preprocess(batch)
            backbone = model.forward_features(pixel_values, task)
            if features == "backbone":
                vectors.append(pooled_features(backbone).double().cpu().numpy())
            if entropy:
                output = model.forward_head(task, backbone, tuple(pixel_values.shape[-2:]))
                entropies.append(predictive_entropy(output, kind).double().cpu().numpy())
        bar.update(len(batch))
    bar.close()
    return Measured(np.concatenate(entropies) if entropy else None,
                    np.concatenate(vectors) if features else None)


__all__ = ["FEATURES", "Measured", "PIXEL_SIZE", "measure", "pixel_features"]
