"""The picture: the first three principal components of the patch features as RGB, one row per scan,
random init beside pretrained. The components are fitted per backbone on the non-black patches of all
scans together (so colours compare across rows); black patches (outside the fan, letterbox padding)
are drawn black."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from m2dino import M2DINO

# A patch whose mean input intensity is below this (of 255) is empty: outside the fan or letterbox padding
# (low enough that dark tissue such as amniotic fluid stays in).
DARK_PATCH = 3


@torch.no_grad()
def patch_grids(model: M2DINO, files: list[str], task: str) -> tuple[np.ndarray, np.ndarray]:
    """(patch tokens N×h×w×C, the letterboxed input images N×H×W×3 uint8) of ``files``."""
    pixels, _ = model.preprocess(files)
    features = model.forward_features(pixels, task)
    h, w = features.grid_size
    tokens = features.patch_tokens.reshape(len(files), h, w, -1).float().numpy()
    mean = torch.tensor(model.config.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.config.preprocessing.std).view(1, 3, 1, 1)
    shown = ((pixels * std + mean).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return tokens, shown


def pca_rgb(tokens: np.ndarray, images: np.ndarray, patch: int = 16) -> np.ndarray:
    """N×h×w×3 in [0, 1]: the first 3 PCA components of the tissue patches, each scaled by its 1st–99th
    percentile over all scans; dark patches black."""
    n, h, w, c = tokens.shape
    brightness = images.reshape(n, h, patch, w, patch, 3).mean(axis=(2, 4, 5))
    tissue = brightness >= DARK_PATCH
    x = tokens[tissue]
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    projected = (tokens.reshape(-1, c) - mean) @ vt[:3].T
    low, high = np.percentile(projected[tissue.reshape(-1)], [1, 99], axis=0)
    rgb = np.clip((projected - low) / np.maximum(high - low, 1e-8), 0, 1).reshape(n, h, w, 3)
    rgb[~tissue] = 0
    return rgb


def pca_figure(scans: list[tuple[str, str]], models: dict[str, M2DINO], task: str, out_path: Path) -> None:
    """``scans``: (label, image file); ``models``: column title → model. Writes a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = [f for _, f in scans]
    columns = {title: patch_grids(model, files, task) for title, model in models.items()}
    shown = next(iter(columns.values()))[1]
    rgbs = {title: pca_rgb(tokens, images) for title, (tokens, images) in columns.items()}
    fig, axes = plt.subplots(len(scans), 1 + len(models), figsize=(2.4 * (1 + len(models)), 2.4 * len(scans)),
                             squeeze=False)
    for row, (label, _) in enumerate(scans):
        axes[row, 0].imshow(shown[row])
        axes[row, 0].set_ylabel(label, fontsize=9)
        for col, (title, rgb) in enumerate(rgbs.items(), start=1):
            axes[row, col].imshow(rgb[row], interpolation="nearest")
            if row == 0:
                axes[row, col].set_title(title, fontsize=9)
        if row == 0:
            axes[row, 0].set_title("scan (model input)", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
