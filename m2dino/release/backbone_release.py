"""`release_backbone(BackboneReleaseConfig)`: pretraining (resumed where its folder has checkpoints) → a
Hub-ready folder of the backbone alone → optionally the Hub.

The folder::

    model.safetensors, config.json   the EMA teacher's backbone in timm's layout (config.json: timm's
                                     ``architecture`` and the input preprocessing), so ``--pretrained``
                                     takes the folder, its zoo name or its Hub id
    README.md                        the card: data and licences, the linear probes against random init,
                                     the pretraining's losses, command, commit and config
    probe.json                       every probe cell (task, init, seed → accuracy, macro F1)
    release.json, release.yaml       as a model release (`zoo_entry` reads release.json)
    loss_curves.png                  the pretraining's loss curves

Every probe number is measured here on the weights as stored in the folder.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCardData
from safetensors.torch import load_file, save_file

from .. import __version__
from ..image.preprocessing import backbone_normalization
from ..models.backbone import DINOv3Backbone, resolve_backbone
from ..training.pretrain.curves import CURVES_FILE, read_log
from ..training.pretrain.trainer import FINAL_LOSS_RECORDS, LOSS_NAMES
from .backbone_config import BackboneReleaseConfig
from .card import STANDARD_LIMITS
from .checks import check_release_folder, fmc_root_tasks
from .licensing import LicenseDecision, weights_license
from .pipeline import RELEASE_JSON, RELEASE_YAML, file_records, git_commit, release_files
from .pretraining_stage import finished_pretraining
from .push import hub_token, push_release

WEIGHTS_FILE = "model.safetensors"  # what `load_backbone_weights` downloads from a Hub id
PROBE_JSON = "probe.json"
INITS = ("random init", "this backbone")


@dataclass
class BackboneReleaseOutcome:
    folder: Path
    probes: list[dict]          # one per (task, init, seed)
    license: LicenseDecision
    pushed: str | None = None


def check_backbone_release(config: BackboneReleaseConfig, overwrite: bool = False) -> LicenseDecision:
    """Every problem a release would meet, as one error before pretraining starts."""
    from ..data import read_fmc_index
    from ..evaluation.linear_probe import PROBE_TRAIN_FRACTION

    for task, root in config.probe.items():
        for split in ("train", "val", "test"):
            if task not in fmc_root_tasks(Path(root) / split, f"probe.{task}"):
                raise ValueError(f"probe.{task}: {Path(root) / split} has no {task} samples; expected an FMC root "
                                 "with train/, val/ and test/ splits of the task")
        counts = Counter(int(r.label) for r in read_fmc_index(Path(root) / "train", [task]))
        held = int(sum(counts.values()) * (1 - PROBE_TRAIN_FRACTION))  # what the stratified split leaves out
        if min(counts.values()) < 2 or held < len(counts):
            raise ValueError(f"probe.{task}: {Path(root) / 'train'} has {sum(counts.values())} images in "
                             f"{len(counts)} classes (fewest: {min(counts.values())}); the probe's stratified "
                             f"{PROBE_TRAIN_FRACTION:.0%} split needs 2 per class and {len(counts)} left out")
    decision = weights_license(config.licenses, config.license)
    check_release_folder(config.folder, overwrite, "pretrain.output_dir", config.pretrain.output_dir,
                         "the pretraining")
    return decision


def release_backbone(config: BackboneReleaseConfig, *, command: str | None = None, overwrite: bool = False,
                     progress: bool = True, push: str | None = None) -> BackboneReleaseOutcome:
    """Make the backbone release of ``config`` (see the module's docstring). The pretraining resumes from
    the latest checkpoint in ``pretrain.output_dir`` (a finished run is only exported again), so a long
    pretraining can run in parts with ``m2dino pretrain`` and be released here; ``overwrite`` replaces
    the release folder only (`pretraining_stage`). The probes run on the CPU (a few hundred images
    through a frozen backbone)."""
    decision = check_backbone_release(config, overwrite)
    token = hub_token(push) if push else None
    outcome = finished_pretraining(config.pretrain, progress)

    folder = config.folder
    if folder.is_dir():
        shutil.rmtree(folder)  # --overwrite (checked): a release folder holds only this release's files
    folder.mkdir(parents=True)
    backbone = write_backbone(outcome.backbone, folder, config)
    pretrain_dir = Path(config.pretrain.output_dir)
    if (pretrain_dir / CURVES_FILE).is_file():
        shutil.copy2(pretrain_dir / CURVES_FILE, folder / CURVES_FILE)
    probes = run_probes(config, folder / WEIGHTS_FILE, progress)
    (folder / PROBE_JSON).write_text(json.dumps(probes, indent=1) + "\n")
    (folder / RELEASE_YAML).write_text(config.to_yaml())
    losses = final_losses(pretrain_dir / "log.jsonl")
    command = command or "m2dino.release.release_backbone(BackboneReleaseConfig.read('release.yaml')) from Python"
    commit = git_commit()
    (folder / "README.md").write_text(backbone_card(config, backbone, probes, decision, outcome.images, losses,
                                                    command, commit, push or config.name, folder))
    write_backbone_release_json(folder, config, backbone, probes, decision, outcome.images, command, commit, push)
    pushed = push_release(folder, push, token) if push else None
    if progress:
        print(f"release {config.name}: {folder}" + (f" (pushed: {pushed})" if pushed else ""))
    return BackboneReleaseOutcome(folder, probes, decision, pushed)


def write_backbone(exported: Path, folder: Path, config: BackboneReleaseConfig) -> DINOv3Backbone:
    """model.safetensors (the exported backbone's tensors in the release's dtype) and a timm-style
    config.json; returns the backbone as stored (loaded back, for its name and size)."""
    state = load_file(str(exported))
    target = torch.bfloat16 if config.weights_dtype == "bf16" else torch.float32
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in state.items()}
    backbone = DINOv3Backbone(config.pretrain.backbone)
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "backbone": backbone.name,
                                                           "m2dino": "backbone release"})
    size = config.pretrain.crops.global_size
    from ..models.pretrained_weights import load_backbone_weights

    load_backbone_weights(backbone, folder / WEIGHTS_FILE)  # the stored file must load (it is what users get)
    mean, std = backbone_normalization(backbone.timm_name)
    # timm's Hub config: create_model(architecture, **model_args) builds this size (m2dino's small
    # backbones are timm architectures with other widths and depths).
    (folder / "config.json").write_text(json.dumps({
        "architecture": backbone.timm_name, "model_args": resolve_backbone(backbone.name)[1].overrides,
        "m2dino_backbone": backbone.name, "num_features": backbone.embed_dim,
        "pretrained_cfg": {"input_size": [3, size, size], "mean": mean, "std": std}}, indent=1) + "\n")
    return backbone


def run_probes(config: BackboneReleaseConfig, weights: Path, progress: bool) -> list[dict]:
    """Each probe task × seed, with a random-init backbone (drawn by the seed) and with ``weights``."""
    from ..evaluation.linear_probe import build_backbone_model, extract, fit_probe, load_probe_data

    size = config.pretrain.crops.global_size
    cells = []
    for task, root in config.probe.items():
        reference = build_backbone_model(task, None, 0, size, config.pretrain.backbone)
        data = load_probe_data(Path(root), task, reference.preprocess)
        for seed in config.probe_seeds:
            for init in INITS:
                model = build_backbone_model(task, str(weights) if init == INITS[1] else None, seed, size,
                                             config.pretrain.backbone)
                result = fit_probe(extract(model, data), data.labels, seed)
                cells.append({"task": task, "root": root, "init": init, "seed": seed, **result})
                if progress:
                    print(f"probe {task} {init} seed {seed}: accuracy {result['accuracy']:.3f}, "
                          f"macro F1 {result['macro_f1']:.3f}")
    return cells


def probe_summary(probes: list[dict]) -> list[dict]:
    """Per task and init: mean and SD over seeds of accuracy and macro F1, and the difference of the means."""
    rows = []
    for task in dict.fromkeys(p["task"] for p in probes):
        stats = {}
        for init in INITS:
            cells = [p for p in probes if p["task"] == task and p["init"] == init]
            stats[init] = {m: (statistics.mean(c[m] for c in cells),
                               statistics.stdev(c[m] for c in cells) if len(cells) > 1 else 0.0)
                           for m in ("accuracy", "macro_f1")}
        rows.append({"task": task, "seeds": len([p for p in probes if p["task"] == task]) // len(INITS),
                     "test_images": next(p["test_images"] for p in probes if p["task"] == task), **stats})
    return rows


def backbone_card(config: BackboneReleaseConfig, backbone: DINOv3Backbone, probes: list[dict],
                  decision: LicenseDecision, images: int, losses: dict[str, float], command: str, commit: str,
                  usage_name: str, folder: Path) -> str:
    """README.md of a backbone release: front matter (licence, probe results), then the sections."""
    rows = probe_summary(probes)
    results = [EvalResult(task_type="image-classification", task_name=f"{row['task']} (linear probe)",
                          dataset_type=row["task"], dataset_name=row["task"], dataset_split="test",
                          metric_type=metric, metric_name=f"{metric} (linear probe, mean of {row['seeds']} seeds)",
                          metric_value=float(row[INITS[1]][metric][0]))
               for row in rows for metric in ("accuracy", "macro_f1")]
    data = ModelCardData(model_name=config.name, library_name="m2dino", license=decision.hub_id,
                         tags=["ultrasound", "medical-imaging", "dinov3", "self-supervised", "backbone", "m2dino"],
                         eval_results=results or None)
    params = sum(p.numel() for p in backbone.parameters())
    table = ["| task (test split) | images | metric | random init | this backbone | difference |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        for metric in ("accuracy", "macro_f1"):
            (rm, rs), (bm, bs) = row[INITS[0]][metric], row[INITS[1]][metric]
            table.append(f"| `{row['task']}` | {row['test_images']} | {metric} | {rm:.3f} ± {rs:.3f} | "
                         f"{bm:.3f} ± {bs:.3f} | {bm - rm:+.3f} |")
    pretrain = config.pretrain
    licences = "\n".join(f"| {d} | {lic} | {config.dataset_notes.get(d, 'n/a')} |"
                          for d, lic in config.licenses.items())
    files = release_files(folder)
    parts = [
        f"---\n{data.to_yaml()}\n---\n", f"# {config.name}\n",
        f"A DINOv3 ViT backbone (`{pretrain.backbone}` = `{backbone.name}`: timm's `{backbone.timm_name}`"
        f"{architecture_changes(backbone.name)}, {params / 1e6:.2f} M parameters) pretrained by "
        "`m2dino pretrain` (DINO + iBOT self-distillation with "
        f"KoLeo) on {images} unlabelled ultrasound images, {pretrain.steps} steps of {pretrain.batch_size} "
        f"({pretrain.crops.global_size}-px global and {pretrain.crops.local_size}-px local crops), from "
        f"{pretrain.pretrained or 'random initialisation'}. The backbone alone, without heads: a start for your "
        f"own tasks. Weights: {config.weights_dtype}, the EMA teacher's.\n",
        "## Usage\n",
        "```bash\n"
        f"m2dino train --set model.backbone={pretrain.backbone} --set model.pretrained={usage_name} ...\n"
        f"python recipes/unified.py --backbone {pretrain.backbone} --pretrained {usage_name} ...\n```\n",
        "```python\nfrom m2dino import M2DINO, M2DINOConfig\n\n"
        f'config = M2DINOConfig(backbone="{pretrain.backbone}", tasks=["fetal_head"], '
        f"image_size=({pretrain.crops.global_size}, {pretrain.crops.global_size}))\n"
        f'model = M2DINO(config, backbone_weights="{usage_name}")\n```\n',
        "## What the features hold: linear probes\n",
        "The backbone frozen, pooled features [CLS ‖ mean patch token] of every image, a standardised logistic "
        "regression fit on a seeded 80 % of the task's train split, its C chosen on the val split, scored on the "
        "test split; against the same protocol on a random-init backbone drawn by the same seed. Mean ± SD over "
        "the seeds, measured by this release on the weights as stored.\n",
        "\n".join(table) + "\n" if rows else "No probe was configured for this release.\n",
        "A probe measures what a linear map reads from frozen features; fine-tuning a whole model on a task can "
        "close or widen the gap.\n",
        "## Intended use and limits\n", f"Intended use: {config.intended_use}.\n",
        STANDARD_LIMITS.replace("The numbers above hold for the listed test splits only.",
                                "The probe numbers hold for the listed test splits only.")
        + (f"\n\n{config.limitations}" if config.limitations else "") + "\n",
        "## Pretraining data\n", "| dataset | licence | source |\n|---|---|---|\n" + licences + "\n",
        f"Validation and test images of the benchmark roots were excluded (held out: "
        f"{', '.join(f'`{h}`' for h in pretrain.held_out) or 'none'}).\n",
        "## License\n", f"- Weights: **{decision.license}**, {decision.reason}.\n- m2dino code: Apache-2.0.\n",
        "## How this release was made\n", f"Command: `{command}`\n", f"m2dino commit: `{commit}`\n",
    ]
    if losses:
        parts += ["Final pretraining losses (mean of the last logged steps): "
                  + ", ".join(f"{k} {v:.3f}" for k, v in losses.items()) + "\n"]
    if (folder / CURVES_FILE).is_file():
        parts += [f"![pretraining loss curves]({CURVES_FILE})\n"]
    parts += ["Release config (resolved):\n", f"```yaml\n{config.to_yaml()}```\n",
              "## Files\n", "\n".join(f"- `{f}`" for f in [*files, "README.md", RELEASE_JSON]) + "\n"]
    return "\n".join(parts)


def write_backbone_release_json(folder: Path, config: BackboneReleaseConfig, backbone: DINOv3Backbone,
                                probes: list[dict], decision: LicenseDecision, images: int, command: str,
                                commit: str, hub_id: str | None) -> Path:
    files = file_records(folder)
    size = config.pretrain.crops.global_size
    record = {
        "name": config.name, "kind": "backbone", "m2dino_version": __version__, "hub_id": hub_id,
        "backbone": backbone.name, "params": sum(p.numel() for p in backbone.parameters()),
        "input_size": [size, size], "tasks": [], "weights_dtype": config.weights_dtype,
        "license": decision.license, "license_reason": decision.reason, "pretraining_images": images,
        "training_data": [{"dataset": d, "license": lic, "note": config.dataset_notes.get(d)}
                          for d, lic in config.licenses.items()],
        "metrics": [{"task": row["task"], "dataset": row["task"], "split": "test", "metric": f"{m} (linear probe)",
                     "value": row[INITS[1]][m][0], "random_init": row[INITS[0]][m][0]}
                    for row in probe_summary(probes) for m in ("accuracy", "macro_f1")],
        "command": command, "commit": commit, "files": files,
    }
    path = folder / RELEASE_JSON
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path



def architecture_changes(name: str) -> str:
    """`` with embed_dim 128, depth 4`` for a backbone that changes timm's architecture, else ``""``."""
    overrides = resolve_backbone(name)[1].overrides
    return " with " + ", ".join(f"{key} {value}" for key, value in overrides.items()) if overrides else ""


def final_losses(log: Path) -> dict[str, float]:
    """The pretraining's losses as its own card states them: the mean of the last logged steps."""
    recent = read_log(log)[-FINAL_LOSS_RECORDS:] if log.is_file() else []
    return {name: statistics.mean(r[name] for r in recent if name in r)
            for name in LOSS_NAMES if any(name in r for r in recent)}
