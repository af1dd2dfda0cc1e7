"""`release(ReleaseConfig)`: optional pretraining → training → evaluation on every training dataset's
test split → one Hub-ready folder (→ optionally the Hub).

The folder::

    config.json, model.safetensors      the model (weights in the config's dtype; config.json holds the
                                        preprocessing: input size, resize mode, mean and std)
    README.md                           the model card, with the Hub's model-index
    release.json                        machine-readable: name, metrics, licence, files (→ `zoo_entry`)
    release.yaml                        the full resolved release config
    evaluation/<dataset>/metrics.json   the model's scores (what the card shows)
    evaluation/<dataset>/constant_metrics.json   the constant predictor's
    loss_curves.png, examples/*.png     the training curves and overlays on example scans

Every number on the card is measured here, on the weights as stored in the folder, through the calls
``m2dino evaluate`` makes (`m2dino.release.scoring`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..image import to_rgb_uint8
from ..models import M2DINO
from ..models.hub import save_weights
from ..recipes.run_data import load_data
from ..recipes.runner import check_outputs, train
from ..visualize import draw_panel
from .card import card_data, datasheet_table, render_card, result_rows, results_table
from .checks import check_release, example_paths
from .curves import CURVES_FILE, plot_training_curves
from .licensing import LicenseDecision
from .pretraining_stage import finished_pretraining
from .push import hub_token, push_release
from .release_config import ReleaseConfig

RELEASE_JSON = "release.json"
RELEASE_YAML = "release.yaml"
EVALUATION_DIR = "evaluation"
EXAMPLES_DIR = "examples"
MAX_EXAMPLE_TASKS = 6  # tiles per overlay: more are unreadable at a card's width
BUNDLED_CREDIT = ("The scans are m2dino's synthetic examples (m2dino.data.synthetic: a fetal head and a fetal plane), "
                  "not real patients': they show the output format, not accuracy. A tile for an organ the scan "
                  "does not show only illustrates the output format.")


@dataclass
class ReleaseOutcome:
    """What a release made: its folder, the scores (dataset → metrics.json dict) and the licence."""

    folder: Path
    metrics: dict[str, dict]
    constant: dict[str, dict]
    license: LicenseDecision
    pushed: str | None = None   # the Hub commit URL after --push


def release(config: ReleaseConfig, *, command: str | None = None, overwrite: bool = False,
            device: str | torch.device = "cpu", progress: bool = True, push: str | None = None) -> ReleaseOutcome:
    """Make the release of ``config`` (see the module's docstring). Bad input (tasks missing from the data
    or the test roots, a permissive licence over non-commercial data, an unknown example scan, a push
    without a token, an occupied folder) is refused before any work. ``command`` is what the card
    records as the command that made it; ``push`` an ``org/name`` to upload the folder to."""
    tested, decision = check_release(config, overwrite)
    run = copy.deepcopy(config.run)
    check_outputs(run, None, overwrite)  # the training folder too, before a long pretraining
    token = hub_token(push) if push else None
    if config.pretrain is not None:  # resumed from its checkpoints: a long pretraining runs in parts
        outcome = finished_pretraining(config.pretrain, progress)
        run.model.pretrained = str(outcome.backbone)
        run.model.backbone = run.model.backbone or config.pretrain.backbone
    trained = train(run, overwrite=overwrite, progress=progress)
    if trained.interrupted:
        raise RuntimeError(f"training was interrupted; finish it (m2dino train {run.output_dir}/run.yaml "
                           "--resume latest) before releasing")
    model_dir = trained.runs[0].result.output_dir  # OUTPUT/stage2 after two_stage_steps

    folder = config.folder
    if folder.is_dir():
        shutil.rmtree(folder)  # --overwrite (checked): a release folder holds only this release's files
    write_model(M2DINO.from_pretrained(model_dir), folder, config.weights_dtype)
    released = M2DINO.from_pretrained(folder, device=device)  # the card measures the weights as stored

    work = Path(run.output_dir) / "release_evaluation"  # submissions stay with the run, not in the upload
    data = load_data(run.data, run.model.image_size, run.train.seed)  # the run's own training samples
    grid = (run.model.image_size, run.model.image_size)
    metrics, constant = {}, {}
    from ..evaluation import evaluate_constant
    from .scoring import evaluate_model

    for dataset, tasks in tested.items():
        root = config.test[dataset]
        metrics[dataset] = evaluate_model(released, root, tasks, work / dataset / "model", config.batch_size,
                                          progress)
        constant[dataset] = evaluate_constant(data.train, root, work / dataset / "constant", tasks, grid,
                                              progress).metrics
        target = folder / EVALUATION_DIR / dataset
        target.mkdir(parents=True, exist_ok=True)
        (target / "metrics.json").write_text(json.dumps(metrics[dataset], indent=1) + "\n")
        (target / "constant_metrics.json").write_text(json.dumps(constant[dataset], indent=1) + "\n")

    curves = plot_training_curves(model_dir / "log.jsonl", folder / CURVES_FILE) \
        if (model_dir / "log.jsonl").is_file() else None
    examples = draw_examples(released, example_paths(config), folder / EXAMPLES_DIR, config.tasks)
    rows = result_rows(metrics, constant, tested)
    datasheet = [{"dataset": d, "tasks": tasks, "train_samples": sum(len(data.train[t]) for t in tasks),
                  "test_samples": sum(r.num_samples or 0 for r in rows if r.dataset == d),
                  "license": config.licenses[d], "note": config.dataset_notes.get(d)} for d, tasks in tested.items()]
    command = command or "m2dino.release.release(ReleaseConfig.read('release.yaml')) from Python"
    commit = git_commit()
    (folder / RELEASE_YAML).write_text(config.to_yaml())
    dinov3 = "dinov3" in (run.model.pretrained or "").lower()
    card = render_card(
        name=config.name, data=card_data(config.name, rows, decision, dinov3), summary=summary(config, released),
        results=results_table(rows), evaluate_commands=evaluate_commands(config, tested, device),
        usage_name=push or config.name, first_task=config.tasks[0], intended_use=config.intended_use,
        limitations=config.limitations, datasheet=datasheet_table(datasheet),
        license_text=license_text(decision, run.model.pretrained, dinov3), command=command, commit=commit,
        config_yaml=config.to_yaml(), curves=CURVES_FILE if curves else None,
        examples=[p.relative_to(folder).as_posix() for p in examples],
        examples_credit=config.examples_credit or BUNDLED_CREDIT,
        files=release_files(folder)
        + ["README.md", RELEASE_JSON])
    (folder / "README.md").write_text(card)
    write_release_json(folder, config, released, rows, datasheet, decision, command, commit, push)
    pushed = push_release(folder, push, token) if push else None
    if progress:
        print(f"release {config.name}: {folder}" + (f" (pushed: {pushed})" if pushed else ""))
    return ReleaseOutcome(folder, metrics, constant, decision, pushed)


def write_model(model: M2DINO, folder: Path, dtype: str) -> None:
    """config.json and model.safetensors, floating-point tensors in ``dtype`` (integer buffers unchanged).
    `M2DINO.from_pretrained` loads either: its fp32 model copies bf16 tensors in, upcast."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.save(folder)
    target = torch.bfloat16 if dtype == "bf16" else torch.float32
    state = {k: v.to(target) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_weights(state, folder)


def draw_examples(model: M2DINO, scans: list[Path], out: Path, tasks: list[str]) -> list[Path]:
    """One panel per scan: the model's predictions of (up to six of) ``tasks``, as `m2dino predict` draws them."""
    out.mkdir(parents=True, exist_ok=True)
    shown = tasks[:MAX_EXAMPLE_TASKS]
    paths = []
    for scan in scans:
        array = to_rgb_uint8(scan, allow_rgba=True)
        panel = draw_panel(array, model.predict_all(array, tasks=shown), model.task_spec, tile_width=360)
        path = out / f"{scan.stem}.png"
        panel.save(path)
        paths.append(path)
    return paths


def summary(config: ReleaseConfig, model: M2DINO) -> str:
    """The card's opening paragraph: what the model is and what it does."""
    params = sum(p.numel() for p in model.parameters())
    size = "×".join(map(str, model.config.image_size))
    moe = (f"task-conditioned MoE in blocks {list(model.moe_blocks)} ({model.config.num_experts} experts, "
           f"top-{model.config.top_k})") if model.moe_blocks else "no MoE (dense)"
    return (f"An **M2DINO** multi-task ultrasound model released with `m2dino release`: a DINOv3 ViT backbone "
            f"(`{model.config.backbone}`, {params / 1e6:.2f} M parameters, {moe}) with one head per task, "
            f"for {len(config.tasks)} tasks: {', '.join(f'`{t}`' for t in config.tasks)}. Input: {size} pixels "
            f"({model.config.resize_mode}), normalised with mean {list(model.config.mean)} and std "
            f"{list(model.config.std)} (all in config.json; `predict` applies them and maps outputs back to the "
            f"scan's pixels). Weights: {config.weights_dtype}.")


def evaluate_commands(config: ReleaseConfig, tested: dict[str, list[str]], device) -> list[str]:
    """The `m2dino evaluate` line per test split that reproduces the card's numbers (MODEL: this folder or
    its Hub id; the test roots as the release config names them)."""
    device_name = torch.device(device).type
    return [f"m2dino evaluate --model MODEL --data {config.test[d]} --tasks {' '.join(tasks)} "
            f"--batch-size {config.batch_size} --device {device_name} --out eval/{d}" for d, tasks in tested.items()]


def license_text(decision: LicenseDecision, pretrained: str | None, dinov3: bool) -> str:
    lines = [f"- Weights: **{decision.license}**, {decision.reason}."]
    if dinov3:
        lines.append(f"- Backbone initialised from `{pretrained}`: Meta's DINOv3 License "
                     "(https://ai.meta.com/resources/models-and-libraries/dinov3-license/) applies too and "
                     "travels with every derivative.")
    elif pretrained:
        lines.append(f"- Backbone initialised from `{pretrained}` (this release's own pretraining or a file).")
    else:
        lines.append("- Backbone: randomly initialised (no pretrained weights).")
    lines.append("- m2dino code: Apache-2.0.")
    return "\n".join(lines)


def git_commit() -> str:
    """The m2dino checkout's commit (``+ uncommitted changes`` when its tree differs), else ``unknown``."""
    where = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + uncommitted changes" if dirty else commit or "unknown"


def release_files(folder: Path) -> list[str]:
    """Every file of a release folder, relative to it, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def file_records(folder: Path) -> dict[str, dict]:
    """release.json's ``files``: each file's size and SHA-256, by its path in the folder."""
    return {name: {"bytes": (folder / name).stat().st_size,
                   "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
            for name in release_files(folder)}


def write_release_json(folder: Path, config: ReleaseConfig, model: M2DINO, rows, datasheet: list[dict],
                       decision: LicenseDecision, command: str, commit: str, hub_id: str | None) -> Path:
    """release.json: what a registry entry (`zoo_entry`) and other programs read about the release."""
    files = file_records(folder)
    record = {
        "name": config.name, "m2dino_version": __version__, "hub_id": hub_id,
        "backbone": model.config.backbone, "params": sum(p.numel() for p in model.parameters()),
        "input_size": list(model.config.image_size), "tasks": config.tasks, "weights_dtype": config.weights_dtype,
        "license": decision.license, "license_reason": decision.reason,
        "training_data": [{"dataset": d["dataset"], "license": d["license"], "tasks": d["tasks"],
                           "train_samples": d["train_samples"], "test_samples": d["test_samples"],
                           "note": d.get("note")} for d in datasheet],
        "metrics": [{"task": r.task, "dataset": r.dataset, "split": "test", "metric": m, "value": v,
                     "constant": r.constant.get(m)} for r in rows for m, v in r.metrics.items()],
        "command": command, "commit": commit, "files": files,
    }
    path = folder / RELEASE_JSON
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def zoo_entry(release_folder: str | Path, hub_id: str | None = None, bundled: str | None = None) -> dict:
    """The registry entry (`m2dino/models/zoo.json`'s format) of a model or backbone release folder, from
    its release.json.
    ``hub_id`` defaults to where it was pushed; ``bundled`` is the folder relative to the registry file."""
    path = Path(release_folder) / RELEASE_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{release_folder}: no {RELEASE_JSON} (expected a folder made by m2dino release)")
    record = json.loads(path.read_text())
    return {"name": record["name"], "kind": record.get("kind", "model"), "hub_id": hub_id or record.get("hub_id"),
            "revision": None,
            "bundled": bundled, "backbone": record["backbone"], "params": record["params"],
            "input_size": record["input_size"], "tasks": record["tasks"],
            "training_data": [{"dataset": d["dataset"], "license": d["license"],
                               **({"url": d["note"]} if str(d.get("note") or "").startswith("http") else {})}
                              for d in record["training_data"]],
            "metrics": [{k: m[k] for k in ("task", "dataset", "split", "metric", "value")} for m in record["metrics"]],
            "license": record["license"]}
