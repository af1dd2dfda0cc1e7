"""A backbone release (``kind: backbone``) end to end on synthetic scans: `m2dino release` pretrains a
test-size backbone, writes the Hub-ready folder, probes it against random init, and its folder becomes a
zoo entry that ``--pretrained NAME`` loads; a second release reuses the finished pretraining; bad input
fails before any work."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from m2dino.cli.main import main
from m2dino.models import M2DINO, M2DINOConfig
from m2dino.models.backbone import DINOv3Backbone, resolve_backbone
from m2dino.models.pretrained_weights import load_backbone_weights
from m2dino.release import BackboneReleaseConfig, release_backbone, zoo_entry
from m2dino.release.backbone_release import probe_summary

from .conftest import write_release_yaml

PROBE_TASK = "fetal_plane_cls"


@pytest.fixture(scope="module")
def probe_root(tmp_path_factory):
    """A classification task with train/val/test splits (enough images per split for a stratified 80 %)."""
    from m2dino.data.synthetic import write_synthetic

    out = tmp_path_factory.mktemp("probe_data")
    write_synthetic(out, per_task=36, image_size=32, seed=1, splits=("train", "val", "test"), tasks=[PROBE_TASK])
    return out


def backbone_values(root, folder, **changes) -> dict:
    values = {
        "kind": "backbone", "name": "m2dino-test-backbone", "output_dir": str(folder / "release"),
        "pretrain": {"output_dir": str(folder / "pretrain"), "backbone": "test", "steps": 3, "batch_size": 3,
                     "warmup_steps": 1, "log_every": 1, "threads": 1, "data": [f"fmc:{root / 'train'}"],
                     "held_out": [f"fmc:{root / 'val'}", f"fmc:{root / 'test'}"],
                     "crops": {"global_size": 32, "local_size": 16, "local_crops": 2},
                     "loss": {"prototypes": 32, "ibot_prototypes": 16, "head_hidden": 32, "head_bottleneck": 16}},
        "licenses": {"synthetic": "CC0-1.0"},
        "probe": {PROBE_TASK: str(root)},
        "probe_seeds": [0, 1],
        "weights_dtype": "bf16",
    }
    values.update(changes)
    return values


def test_a_backbone_release_pretrains_probes_and_loads_by_zoo_name(probe_root, tmp_path, monkeypatch, capsys):
    torch.set_num_threads(1)
    path = write_release_yaml(tmp_path / "backbone.yaml", backbone_values(probe_root, tmp_path))
    assert main(["release", str(path), "--quiet"]) == 0
    folder = tmp_path / "release"
    assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "README.md", "release.json",
                                                  "release.yaml", "probe.json", "loss_curves.png"}

    # The stored weights are the pretraining's exported teacher, rounded to bf16, and load by file.
    exported = load_file(str(tmp_path / "pretrain" / "backbone.safetensors"))
    stored = load_file(str(folder / "model.safetensors"))
    assert stored.keys() == exported.keys()
    assert all(stored[k].dtype == torch.bfloat16 and torch.equal(stored[k], exported[k].to(torch.bfloat16))
               for k in stored if exported[k].is_floating_point())
    timm_config = json.loads((folder / "config.json").read_text())
    name, spec = resolve_backbone("test")
    assert (timm_config["architecture"], timm_config["model_args"], timm_config["m2dino_backbone"]) == (
        spec.timm_name, spec.overrides, name)

    # The card's probe table is what probe.json holds: every seed of both inits.
    probes = json.loads((folder / "probe.json").read_text())
    assert sorted((p["init"], p["seed"]) for p in probes) == [("random init", 0), ("random init", 1),
                                                              ("this backbone", 0), ("this backbone", 1)]
    card = (folder / "README.md").read_text()
    row = probe_summary(probes)[0]
    (random_mean, _), (ours, _) = row["random init"]["accuracy"], row["this backbone"]["accuracy"]
    assert f"| `{PROBE_TASK}` | {row['test_images']} | accuracy | {random_mean:.3f} ± " in card
    assert f"{ours - random_mean:+.3f} |" in card and "license: cc0-1.0" not in card  # weights: Apache-2.0
    assert "license: apache-2.0" in card and "Not a medical device" in card

    # A zoo entry of kind backbone: --pretrained NAME / backbone_weights=NAME load the stored weights.
    entry = zoo_entry(folder, bundled="release")
    assert (entry["kind"], entry["backbone"], entry["tasks"], entry["input_size"]) == ("backbone", name, [], [32, 32])
    (tmp_path / "zoo.json").write_text(json.dumps({"format": 1, "entries": [entry]}))
    monkeypatch.setenv("M2DINO_ZOO_FILE", str(tmp_path / "zoo.json"))
    from m2dino import list_pretrained

    assert list_pretrained("backbone") == ["m2dino-test-backbone"]
    model = M2DINO(M2DINOConfig(backbone="test", tasks=["fetal_head"], image_size=(32, 32), moe_blocks=()),
                   backbone_weights="m2dino-test-backbone")
    reference = DINOv3Backbone("test")
    load_backbone_weights(reference, folder / "model.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.backbone.state_dict().values(),
                                                 reference.state_dict().values()))

    # Released again with --overwrite: the release folder is replaced, the finished pretraining reused as
    # it is (not one step more, and not started over).
    log = (tmp_path / "pretrain" / "log.jsonl").read_text()
    assert main(["release", str(path), "--quiet", "--overwrite", "--set", "probe_seeds=[0]"]) == 0
    assert (tmp_path / "pretrain" / "log.jsonl").read_text() == log
    assert len(json.loads((folder / "probe.json").read_text())) == 2


@pytest.mark.parametrize("change, message", [
    ({"probe": {"fetal_head": "ROOT"}}, "probe.fetal_head: a mask task; the linear probe needs a classification"),
    ({"probe": {PROBE_TASK: "NOSPLIT"}}, f"probe.{PROBE_TASK}: .*NOSPLIT/val is not an FMC_UIA root"),
    ({"probe": {PROBE_TASK: "FEW"}}, rf"probe.{PROBE_TASK}: .*train has 6 images in 6 classes \(fewest: 1\)"),
    ({"kind": "model"}, "kind='model': a backbone release has kind 'backbone'"),
    ({"licenses": {"a": "CC-BY-NC-4.0"}, "license": "Apache-2.0"}, "license: 'Apache-2.0' is not non-commercial"),
    ({"name": "org/name"}, "name='org/name': expected a zoo name"),
])
def test_bad_backbone_releases_fail_before_any_pretraining(probe_root, tmp_path, change, message):
    values = backbone_values(probe_root, tmp_path, **change)
    if "probe" in change:  # ROOT: the probe data; NOSPLIT: a copy of its train split alone; FEW: 6 images
        from m2dino.data.synthetic import write_synthetic

        shutil.copytree(probe_root / "train", tmp_path / "NOSPLIT" / "train")
        write_synthetic(tmp_path / "FEW", per_task=6, image_size=32, splits=("train", "val", "test"),
                        tasks=[PROBE_TASK])
        values["probe"] = {task: str(probe_root if root == "ROOT" else tmp_path / root)
                           for task, root in change["probe"].items()}

    with pytest.raises((ValueError, FileNotFoundError), match=message):
        release_backbone(BackboneReleaseConfig.from_dict(values), progress=False)
    assert not (tmp_path / "pretrain").exists()


def test_a_push_without_a_token_is_refused_before_pretraining(probe_root, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    path = write_release_yaml(tmp_path / "backbone.yaml", backbone_values(probe_root, tmp_path))
    assert main(["release", str(path), "--push", "org/name", "--quiet"]) != 0
    assert "no Hugging Face token" in capsys.readouterr().err
    assert not (tmp_path / "pretrain").exists()
