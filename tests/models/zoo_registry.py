"""A temporary model zoo for tests: a registry file with a tiny random model bundled beside it, a bundled
ultrasound-style backbone and a Hub-only model (its Hub id is never reached: tests patch the download)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from m2dino import M2DINO, M2DINOConfig
from m2dino.models.backbone import DINOv3Backbone
from m2dino.models.zoo import ZOO_ENV

TASKS = ["fetal_head", "fetal_plane_cls"]
MODEL, BACKBONE, HUB_MODEL = "tiny-us", "tiny-us-backbone", "tiny-us-hub"
HUB_ID, HUB_REVISION = "m2dino-test/tiny-us-hub", "v1"


def tiny_zoo_model(seed: int = 0, tasks: list[str] = TASKS) -> M2DINO:
    torch.manual_seed(seed)
    return M2DINO(M2DINOConfig(backbone="test", tasks=tasks, moe_blocks=(3,), num_experts=2, top_k=1,
                               decoder_features=8, image_size=32)).eval()


def entry(name: str, kind: str = "model", **fields) -> dict:
    """A valid registry entry; ``fields`` replace the defaults."""
    return {"name": name, "kind": kind, "hub_id": None, "bundled": f"bundled/{name}", "backbone": "test",
            "params": 123_456, "input_size": 32, "tasks": list(TASKS) if kind == "model" else [],
            "training_data": [{"dataset": "synthetic", "license": "CC0-1.0"}],
            "metrics": [{"task": "fetal_head", "dataset": "synthetic", "split": "test", "metric": "dice",
                         "value": 0.5}] if kind == "model" else [],
            "license": "Apache-2.0", **fields}


def write_registry(folder: Path, entries: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "zoo.json"
    path.write_text(json.dumps({"format": 1, "entries": entries}))
    return path


def make_zoo(folder: Path, monkeypatch) -> dict:
    """Writes the zoo into ``folder`` and points ``M2DINO_ZOO_FILE`` at it; returns what a test compares with:
    the bundled model and backbone (their weights) and the registry's path."""
    model = tiny_zoo_model()
    model.save_pretrained(folder / "bundled" / MODEL)
    torch.manual_seed(1)
    backbone = DINOv3Backbone("test")
    with torch.no_grad():
        for param in backbone.parameters():
            param.normal_(0, 0.1)  # not the init a fresh backbone gets: loading it must change the weights
    (folder / "bundled" / BACKBONE).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()},
              str(folder / "bundled" / BACKBONE / "backbone.safetensors"))
    path = write_registry(folder, [
        entry(MODEL, hub_id="m2dino-test/tiny-us"),
        entry(BACKBONE, kind="backbone"),
        entry(HUB_MODEL, hub_id=HUB_ID, bundled=None, revision=HUB_REVISION, params=2_500_000,
              input_size=[32, 48]),
    ])
    monkeypatch.setenv(ZOO_ENV, str(path))
    return {"path": path, "model": model, "backbone": backbone}
