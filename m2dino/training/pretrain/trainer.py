"""The pretraining loop on `accelerate.Accelerator`: one step = one batch of multi-crops, the student's
update, then the teacher's EMA update. Resumable exactly (the engine's pickle-free checkpoints; batches
are a function of the step), with the engine's non-finite-loss guard, a tqdm bar and a JSONL log.

A collapsed teacher (after the lr warm-up: every image gets the same output, its logits' relative std
across the batch below ``collapse_threshold``; or every image gets a uniform output, its mean
prediction entropy above ``collapse_entropy`` × ln K) is logged on every such step and warned about;
``collapse_patience`` such steps in a row stop the run with `TeacherCollapseError`.
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

from ...data.unlabeled import UnlabeledSource
from ...image import backbone_normalization
from ...models.backbone import DINOv3Backbone
from ...models.pretrained_weights import load_backbone_weights
from ..accelerator_setup import make_accelerator
from ..checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_training_state,
    read_state,
    save_training_state,
)
from ..engine import NonFiniteLossError
from ..optim import NO_DECAY, warmup_cosine
from ..run_folder import claim_output_dir, hold_run_folder
from ..run_session import run_session
from .curves import CURVES_FILE, read_log
from .data import PretrainBatches, step_loader
from .export import BACKBONE_FILE, CARD_FILE, export_backbone
from .model import SelfDistillation
from .pretrain_config import FREE_ON_RESUME, PretrainConfig
from .schedules import ema_momentum, teacher_temperature

# What a pretraining run writes into its output folder (``overwrite`` removes these and nothing else).
PRETRAIN_OUTPUTS = ("checkpoints", "log.jsonl", BACKBONE_FILE, CARD_FILE, CURVES_FILE, "pretrain_config.json",
                    "m2dino-pretrain", "run.yaml")
LOSS_NAMES = ("loss", "dino_loss", "ibot_loss", "koleo_loss", "gram_loss")
FINAL_LOSS_RECORDS = 10  # the card's final losses: the mean of this many last logged steps


class TeacherCollapseError(RuntimeError):
    """The teacher gave every image the same output for too many steps in a row."""


class PretrainTrainer:
    def __init__(self, source: UnlabeledSource, config: PretrainConfig, resume: str | Path | None = None,
                 overwrite: bool = False, progress: bool = True, accelerator: Accelerator | None = None,
                 step_callback: Callable[[PretrainTrainer, int], None] | None = None) -> None:
        self.config, self.output_dir = config, Path(config.output_dir)
        self.accelerator = accelerator or make_accelerator(config.mixed_precision, self.output_dir)
        set_seed(config.seed)
        # Held from here (a resume too) to the end of train(); a refused __init__ lets go when collected.
        self._run_lock = hold_run_folder(self.output_dir, self.accelerator)
        if resume is None:
            claim_output_dir(self.output_dir, overwrite, PRETRAIN_OUTPUTS)
        backbone = DINOv3Backbone(config.backbone, drop_path_rate=config.drop_path_rate, **config.backbone_overrides)
        if config.pretrained:
            load_backbone_weights(backbone, config.pretrained)  # another architecture raises, naming keys and shapes
        elif config.layerscale_init is not None:
            backbone.reset_layerscale(config.layerscale_init)
        self.source = source
        self.batches = PretrainBatches(source, config.crops, config.batch_size, backbone.patch_size,
                                       _normalisation(backbone), _normalisation(backbone, std=True), config.seed,
                                       self.accelerator.process_index, config.mask_ratio, config.mask_probability)
        self.core = SelfDistillation(backbone, config.loss)
        optimizer = torch.optim.AdamW(_parameter_groups(self.core, config), lr=config.lr, betas=(0.9, 0.999))
        scheduler = warmup_cosine(optimizer, config.warmup_steps, config.steps, config.min_lr_ratio)
        self.module, self.optimizer, self.scheduler = self.accelerator.prepare(self.core, optimizer, scheduler)
        self.counters = {"step": 0, "nonfinite_total": 0, "nonfinite_in_row": 0, "collapsed_total": 0,
                         "collapsed_in_row": 0}
        self.run_id = uuid.uuid4().hex
        self.step_callback, self.progress = step_callback, progress
        self._stop = False
        if resume is not None:
            self._resume(resume)

    # ------------------------------------------------------------------------------ resume
    def _resume(self, resume: str | Path) -> None:
        path = latest_checkpoint(self.output_dir / "checkpoints") if str(resume) == "latest" else Path(resume)
        if path is None:
            raise CheckpointError(f"--resume latest: no checkpoint under {self.output_dir / 'checkpoints'}")
        saved, now = read_state(path)["configuration"], self.config.to_dict()
        changed = [k for k in sorted(set(saved) | set(now)) if k not in FREE_ON_RESUME and saved.get(k) != now.get(k)]
        if changed:
            listed = "; ".join(f"{k}: {saved.get(k)!r} there, {now.get(k)!r} now" for k in changed)
            raise CheckpointError(f"{path} was pretrained with another configuration ({listed}); resume with the "
                                  "same flags")
        state = load_training_state(self.accelerator, path, module=self.module, optimizer=self.optimizer,
                                    scheduler=self.scheduler)
        self.counters.update(state["counters"])
        self.run_id = state["run_id"]
        self.accelerator.print(f"resumed from {path} at step {self.counters['step']}")

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return (what SIGTERM triggers)."""
        self._stop = True

    # -------------------------------------------------------------------------------- loop
    def train(self) -> Path | None:
        """Run to ``config.steps``; the exported backbone file, or None when stopped early (checkpointed)."""
        with self._run_lock:  # released however training ends (return, exception, SIGTERM's checkpoint)
            return self._train()

    def _train(self) -> Path | None:
        config, accelerator = self.config, self.accelerator
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if accelerator.is_main_process:
            (self.output_dir / "pretrain_config.json").write_text(json.dumps(config.to_dict(), indent=1) + "\n")
        if accelerator.is_main_process and accelerator.log_with and not accelerator.trackers:
            accelerator.init_trackers("m2dino-pretrain")  # TensorBoard curves under OUTPUT/m2dino-pretrain
        with run_session(accelerator, self.output_dir, config.steps, self.counters["step"], "pretrain",
                         self.progress, self.request_stop) as (log, bar):
            for batch in step_loader(self.batches, self.counters["step"], config.steps, config.num_workers):
                record = self._step(batch)
                step = self.counters["step"]
                bar.update(1)
                if "loss" in record:
                    bar.set_postfix(loss=f"{record['loss']:.3f}")
                special = "loss" not in record or "teacher_collapse" in record  # always logged
                if log is not None and (step % config.log_every == 0 or step == 1 or special):
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    accelerator.log({k: v for k, v in record.items() if k not in ("step", "time")}, step=step)
                self._check_collapse(record)
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step_callback is not None:
                    self.step_callback(self, step)
                if self._stop:
                    break
            if self.counters["step"] < config.steps:
                accelerator.print(f"stop requested: checkpointing at step {self.counters['step']}")
                self.save_checkpoint()
                return None
            exported = self._export()
            self.save_checkpoint()
            return exported

    def _step(self, batch: dict) -> dict:
        config, accelerator, device = self.config, self.accelerator, self.accelerator.device
        step = self.counters["step"]
        temperature = teacher_temperature(step, config.teacher_temperature_warmup, *config.teacher_temperature)
        local = batch["local"].to(device) if batch["local"] is not None else None
        with accelerator.autocast():
            parts = self.module(batch["global"].to(device), local, batch["masks"].to(device), temperature)
        loss = parts["loss"]
        finite = torch.isfinite(loss.detach()).float()
        if accelerator.num_processes > 1:  # all ranks skip together, or DDP deadlocks
            finite = accelerator.gather(finite.reshape(1)).min()
        self.counters["step"] = step + 1
        if finite.item() < 1.0:
            self.optimizer.zero_grad(set_to_none=True)
            return self._skip_nonfinite(step + 1)
        accelerator.backward(loss)
        if step < config.freeze_prototypes_steps:  # no gradient: AdamW leaves them (and their decay) alone
            for parameter in accelerator.unwrap_model(self.module).prototype_parameters():
                parameter.grad = None
        if config.clip_grad_norm:
            accelerator.clip_grad_norm_(self.module.parameters(), config.clip_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        momentum = ema_momentum(step, config.steps, *config.momentum)
        accelerator.unwrap_model(self.module).update_teacher(momentum)
        self.counters["nonfinite_in_row"] = 0
        record = {"step": step + 1, **{k: float(parts[k].detach()) for k in LOSS_NAMES if k in parts},
                  "teacher_spread": float(parts["teacher_spread"]), "teacher_entropy": float(parts["teacher_entropy"]),
                  "teacher_temperature": temperature, "momentum": momentum, "lr": self.scheduler.get_last_lr()[0],
                  "time": time.time()}
        if step + 1 > config.warmup_steps:
            if not record["teacher_spread"] >= config.collapse_threshold:
                record["teacher_collapse"] = "identical"
            elif not record["teacher_entropy"] <= config.collapse_entropy:
                record["teacher_collapse"] = "uniform"
        return record

    def _skip_nonfinite(self, step: int) -> dict:
        self.counters["nonfinite_total"] += 1
        self.counters["nonfinite_in_row"] += 1
        if self.counters["nonfinite_in_row"] >= self.config.max_nonfinite_in_row:
            raise NonFiniteLossError(f"{self.counters['nonfinite_in_row']} non-finite losses in a row (step {step}): "
                                     "lower --lr, or check the images")
        return {"step": step, "nonfinite_loss": True, "nonfinite_total": self.counters["nonfinite_total"]}

    def _check_collapse(self, record: dict) -> None:
        if "loss" not in record:
            return
        if not record.get("teacher_collapse"):
            self.counters["collapsed_in_row"] = 0
            return
        self.counters["collapsed_total"] += 1
        self.counters["collapsed_in_row"] += 1
        what = (f"its outputs are the same for every image (relative std across the batch "
                f"{record['teacher_spread']:.2e} < {self.config.collapse_threshold:g})"
                if record["teacher_collapse"] == "identical" else
                f"its outputs are uniform over the prototypes (mean entropy {record['teacher_entropy']:.4f} × ln K "
                f"> {self.config.collapse_entropy:g} × ln K)")
        message = (f"teacher collapse at step {record['step']}: {what} for {self.counters['collapsed_in_row']} "
                   "step(s) in a row")
        if self.counters["collapsed_in_row"] == 1:
            warnings.warn(message + "; lower --lr, raise the teacher temperature or check the data", stacklevel=2)
        if self.counters["collapsed_in_row"] >= self.config.collapse_patience:
            raise TeacherCollapseError(message + "; stopping (lower --lr, raise the teacher temperature, or check "
                                       "that the images differ)")

    # ----------------------------------------------------------------------------- saving
    def save_checkpoint(self) -> Path:
        state = {"counters": dict(self.counters), "configuration": self.config.to_dict()}
        return save_training_state(self.accelerator, self.output_dir / "checkpoints", self.counters["step"],
                                   self.config.keep_checkpoints, module=self.module, optimizer=self.optimizer,
                                   scheduler=self.scheduler, state=state, run_id=self.run_id)

    def _export(self) -> Path | None:
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        recent = read_log(self.output_dir / "log.jsonl")[-FINAL_LOSS_RECORDS:]  # a resumed run's too
        final = {name: float(np.mean([r[name] for r in recent if name in r]))
                 for name in LOSS_NAMES if any(name in r for r in recent)}
        summary = {"steps": self.counters["step"], "images": len(self.source), "final_losses": final,
                   "nonfinite_steps": self.counters["nonfinite_total"],
                   "collapsed_steps": self.counters["collapsed_total"]}
        teacher = self.accelerator.unwrap_model(self.module).teacher
        return export_backbone(teacher, self.output_dir, self.config.to_dict(), summary)


def _normalisation(backbone: DINOv3Backbone, std: bool = False) -> tuple[float, float, float]:
    mean, deviation = backbone_normalization(backbone.timm_name)
    return tuple(deviation if std else mean)


def _parameter_groups(model: SelfDistillation, config: PretrainConfig) -> list[dict]:
    """The student's trainable parameters; no weight decay on biases, norms, tokens and LayerScale."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = param.ndim <= 1 or any(k in name for k in (*NO_DECAY, "mask_token"))
        (no_decay if plain else decay).append(param)
    return [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
