"""A tiny release on the synthetic suite: FMC roots of a train and a held-out test split, and its YAML."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TASKS = ["fetal_head", "fetal_plane_cls", "fetal_head_det", "fetal_head_axis"]


@pytest.fixture(scope="session")
def synthetic_roots(tmp_path_factory) -> dict[str, Path]:
    from m2dino.data.synthetic import write_synthetic

    out = tmp_path_factory.mktemp("release_data")
    return write_synthetic(out, per_task=6, image_size=32, seed=0, splits=("train", "test"), tasks=TASKS)


def release_values(roots: dict[str, Path], folder: Path, **changes) -> dict:
    """A release config (as the YAML's mapping) for a backbone-test model at 32 px, 3 steps."""
    values = {
        "name": "m2dino-test-synthetic",
        "output_dir": str(folder / "release"),
        "run": {"output_dir": str(folder / "run"),
                "data": {"sources": [str(roots["train"])], "val": str(roots["test"]), "tasks": TASKS,
                         "num_workers": 0},
                "model": {"backbone": "test", "image_size": 32, "decoder_features": 8},
                "train": {"steps": 3, "batch_size": 4, "eval_every": 3, "log_every": 1, "warmup_steps": 0}},
        "test": {"synthetic": str(roots["test"])},
        "licenses": {"synthetic": "CC0-1.0"},
    }
    values.update(changes)
    return values


def write_release_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path
