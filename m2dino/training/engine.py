"""The training loop shared by the three recipes, on `accelerate.Accelerator`.

One step = one task (every rank draws the same task, a different shard of it), forward, loss
(task loss, optionally uncertainty-weighted, + the MoE balancing loss), backward, clip, step.
Evaluation every ``eval_every`` steps scores held-out samples with the benchmark's scorer; the
best model by the mean normalised task score is kept in ``output_dir/best``.

`Trainer` wires the parts and runs the loop; each part has its own module: the differentiated
loss (`trainer_loss`), the run folder and what is written into it (`run_folder`), resuming
(`trainer_resume`), the unlabelled half of a semi-supervised step (`trainer_semi`), preparing the
model (`trainer_model`), checkpoints (`checkpoint`) and scoring (`validation`).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed

from ..data import Sample
from ..data.device_augment import augment_batch
from ..data.loading import LoaderConfig, build_train_loader
from ..data.sampling import TaskSampler
from ..data.transforms import AugmentConfig
from ..data.unlabeled import UnlabeledSource
from ..models import M2DINO
from .accelerator_setup import make_accelerator
from .checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_training_state,
    read_state,
    save_training_state,
)
from .loss_weighting import UncertaintyWeighting
from .optim import parameter_groups, warmup_cosine
from .run_folder import (
    claim_output_dir,
    compact_metrics,
    hold_run_folder,
    save_final_outputs,
    save_model,
)
from .run_session import run_session
from .semi import SemiConfig, SemiSupervision
from .step_compile import compile_step
from .train_config import TrainConfig
from .trainer_loss import LossModule
from .trainer_model import class_labels, exportable_model, gather_exportable_model, prepare_model
from .trainer_resume import (
    config_differences,
    describe_changes,
    restore_learning_rates,
    run_configuration,
)
from .trainer_semi import SemiInputs
from .validation import normalised_task_scores, validate


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps with a NaN/inf loss."""


@dataclass
class TrainState:
    """Counters saved (as JSON) with every checkpoint."""

    step: int = 0
    nonfinite_total: int = 0
    nonfinite_in_row: int = 0
    best_score: float = -math.inf
    best_step: int = -1

    def state_dict(self) -> dict:
        return dict(vars(self))

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def _to_device(targets, device: torch.device):
    if isinstance(targets, torch.Tensor):
        return targets.to(device, non_blocking=True)
    return [t.to(device, non_blocking=True) for t in targets]


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict
    scores: dict[str, float]
    best_score: float
    best_step: int
    steps_done: int
    nonfinite_steps: int
    interrupted: bool = False
    history: list[dict] = field(default_factory=list)


class Trainer:
    def __init__(self, model: M2DINO, train_samples: dict[str, Sequence[Sample]],
                 val_samples: dict[str, Sequence[Sample]], config: TrainConfig,
                 accelerator: Accelerator | None = None, resume: str | Path | None = None,
                 step_callback: Callable[["Trainer", int], None] | None = None, progress: bool = True,
                 overwrite: bool = False, allow_config_change: bool = False,
                 loading: LoaderConfig | None = None, semi: SemiConfig | None = None,
                 unlabeled: UnlabeledSource | None = None, unlabeled_overlap: str = "error",
                 augment: AugmentConfig | None = None) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or make_accelerator(
            config.mixed_precision, self.output_dir, config.grad_accum, config.distributed, model,
            find_unused_parameters=True)
        set_seed(config.seed)
        missing = set(train_samples) - set(model.task_ids)
        if missing:
            raise ValueError(f"training data for tasks the model does not have: {sorted(missing)}")
        # Held from here (a resume too) to the end of train(); a refused __init__ lets go when collected.
        self._run_lock = hold_run_folder(self.output_dir, self.accelerator)
        if resume is None:
            claim_output_dir(self.output_dir, overwrite)
        if (semi is None) != (unlabeled is None):
            raise ValueError("semi-supervised training needs both a method (--semi) and unlabelled images "
                             "(--unlabeled); got only one")
        self.core = model
        self.train_samples, self.val_samples = train_samples, val_samples
        self.semi_config = semi
        self.augment = augment or AugmentConfig()
        config.semi = semi.to_dict() if semi is not None else None  # recorded, and compared on resume
        self.model = prepare_model(model, config, train_samples)
        self.state = TrainState()
        self.sampler = TaskSampler({t: len(s) for t, s in train_samples.items()}, config.batch_size, config.alpha,
                                   config.seed, num_replicas=self.accelerator.num_processes,
                                   rank=self.accelerator.process_index, class_labels=class_labels(
                                       model, train_samples) if config.class_balance == "sampling" else None)
        # Workers decode and augment; the loader advances self.sampler per consumed batch (exact resume).
        self.loader = build_train_loader(dict(train_samples), self.sampler, model.config.preprocessing, loading,
                                         self.accelerator.device, self.accelerator.num_processes, augment)
        weighting = UncertaintyWeighting(list(train_samples)) if config.loss_weighting == "uncertainty" else None
        self.unlabeled = None if semi is None else SemiInputs(
            semi, unlabeled, val_samples, unlabeled_overlap, model.config.preprocessing, config.batch_size, config.seed,
            self.accelerator.process_index, (loading or LoaderConfig()).num_workers or 0, config.steps)
        module = LossModule(self.model, self.core, weighting,
                            SemiSupervision(semi, self.model, self.core) if semi is not None else None)
        if config.compile:  # in place, so the weights, checkpoints and saved model are those of the eager module
            compile_step(module, self.accelerator.device, len(train_samples), say=self.accelerator.print)
        optimizer = torch.optim.AdamW(parameter_groups(module, config, self.core.backbone.depth), betas=(0.9, 0.999))
        scheduler = warmup_cosine(optimizer, config.warmup_steps, config.steps, config.min_lr_ratio)
        self.module, self.optimizer, self.scheduler = self.accelerator.prepare(module, optimizer, scheduler)
        self.weighting = weighting
        self.step_callback, self.progress = step_callback, progress
        # A stop request (SIGTERM, request_stop) is acted on at a step boundary that every process
        # agrees on: _stop_signal is this process's, _stop_seen any process's as of this step's gather.
        self._stop_signal = self._stop_seen = self._stop_requested = False
        self.history: list[dict] = []
        self.run_id = uuid.uuid4().hex  # retention deletes only checkpoints carrying this run's id
        self.config_changes: list[dict] = []
        self._gathered_final: M2DINO | None = None  # under FSDP, the trained model whole (main process)
        if resume is not None:
            self._resume(resume, allow_config_change)

    # ----------------------------------------------------------------------------- set-up
    def _resume(self, resume: str | Path, allow_config_change: bool) -> None:
        path = latest_checkpoint(self.output_dir / "checkpoints") if str(resume) == "latest" else Path(resume)
        if path is None:
            raise CheckpointError(f"--resume latest: no checkpoint under {self.output_dir / 'checkpoints'}")
        saved = read_state(path)
        now = run_configuration(self.config, self.core, self.augment)
        changes = config_differences(saved["configuration"], now)
        if changes and not allow_config_change:
            raise CheckpointError(f"{path} was trained with another configuration ({describe_changes(changes)}); "
                                  "resume with the same "
                                  "flags, or pass --allow-config-change to continue with the new ones")
        fresh = [(group["lr"], group["weight_decay"]) for group in self.optimizer.param_groups]
        saved = load_training_state(self.accelerator, path, module=self.module, optimizer=self.optimizer,
                                    scheduler=self.scheduler)
        self.state.load_state_dict(saved["counters"])
        self.sampler.load_state_dict(saved["sampler"])
        if self.unlabeled is not None and "unlabeled" in saved:
            self.unlabeled.load_state_dict(saved["unlabeled"])
        self.run_id = saved["run_id"]
        self.config_changes = saved["config_changes"] + [{**c, "step": self.state.step} for c in changes]
        if changes:
            restore_learning_rates(self.optimizer, self.scheduler, fresh)
            self.core.config.training["config_changes"] = self.config_changes
            self.accelerator.print(f"resuming with {len(changes)} changed setting(s): "
                                   + ", ".join(c["field"] for c in changes))
        self.accelerator.print(f"resumed from {path} at step {self.state.step}")

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return (what SIGTERM triggers)."""
        self._stop_signal = True

    # ------------------------------------------------------------------------------- loop
    def train(self) -> TrainResult:
        with self._run_lock:  # released however training ends (return, exception, SIGTERM's checkpoint)
            return self._train()

    def _train(self) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if accelerator.is_main_process and accelerator.trackers == [] and accelerator.log_with:
            accelerator.init_trackers("m2dino", {k: v for k, v in config.to_dict().items()
                                                 if isinstance(v, (int, float, str, bool))})
        metrics, scores = {}, {}
        batches = iter(self.loader)
        with run_session(accelerator, self.output_dir, config.steps, self.state.step, "train", self.progress,
                         self.request_stop) as (log, bar):
            while self.state.step < config.steps and not self._stop_requested:
                try:
                    batch = next(batches)
                except StopIteration:  # epoch finished: the sampler moves on to the next one
                    batches = iter(self.loader)
                    batch = next(batches)
                record = self._step(batch)
                if record is None:
                    continue
                bar.update(1)
                bar.set_postfix(task=record["task"], loss=f"{record['loss']:.3f}")
                step = self.state.step
                if log is not None and (step % config.log_every == 0 or step == 1):
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    accelerator.log({"loss": record["loss"], f"loss/{record['task']}": record["task_loss"],
                                     "balance_loss": record["balance_loss"], "lr": record["lr"]}, step=step)
                if step % config.eval_every == 0 and step < config.steps:
                    metrics, scores = self._evaluate(log, self._gathered_model())
                if config.checkpoint_every and step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.step_callback is not None:
                    self.step_callback(self, step)
                self._stop_requested = self._stop_seen if accelerator.num_processes > 1 else self._stop_signal
            interrupted = self.state.step < config.steps
            if interrupted:
                accelerator.print(f"stop requested: checkpointing at step {self.state.step}")
                self.save_checkpoint()
            else:
                # The trained weights first: best/ and the final checkpoint are optional, and a full
                # disk while writing them must not cost the run's result.
                gathered = self._gathered_final = self._gathered_model()
                metrics, scores = self._evaluate(log, gathered, save_best=False)
                self._save_final(metrics, gathered)
                if accelerator.is_main_process and self.state.best_step == self.state.step:
                    self._save_model(self.output_dir / "best", metrics, gathered)
                self.save_checkpoint()
        return TrainResult(self.output_dir, metrics, scores, self.state.best_score, self.state.best_step,
                           self.state.step, self.state.nonfinite_total, interrupted, self.history)

    def _step(self, batch: dict) -> dict | None:
        accelerator, config = self.accelerator, self.config
        device = accelerator.device
        semi = self.unlabeled.for_step(self.state.step, device) if self.unlabeled is not None else {}
        with accelerator.accumulate(self.module):
            if "augment" in batch:  # uint8 pixels: augmented and normalised here, on the training device
                pixels, targets = augment_batch(batch, device, self.core.config.preprocessing)
            else:
                pixels = batch["pixel_values"].to(device, non_blocking=True)
                targets = _to_device(batch["targets"], device)
            parts = self.module(pixels, batch["task"], targets, **semi)
            loss = parts["loss"]
            finite = torch.isfinite(loss.detach()).float()
            if accelerator.num_processes > 1:
                finite = self._agree_across_ranks(finite, batch["task"])
            if finite.item() < 1.0:
                self.optimizer.zero_grad(set_to_none=True)
                return self._skip_nonfinite(batch["task"])
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.clip_grad_norm:
                accelerator.clip_grad_norm_(self.module.parameters(), config.clip_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        if not accelerator.sync_gradients:
            return None  # a micro-batch of an accumulated step
        if self.semi_config is not None:
            unwrapped = accelerator.unwrap_model(self.module)
            unwrapped.semi.update_teacher(unwrapped.model)
        self.state.step += 1
        self.state.nonfinite_in_row = 0
        return {"step": self.state.step, "task": batch["task"], "loss": float(loss.detach()),
                "task_loss": float(parts["task_loss"].detach()), "balance_loss": float(parts["balance_loss"].detach()),
                "lr": self.scheduler.get_last_lr()[0], "time": time.time(),
                **({"bad_samples": len(self.loader.bad_samples)} if self.loader.bad_samples else {}),
                **({k: float(parts[k].detach()) for k in ("unlabeled_loss", "partner_loss", "confident") if k in parts}
                   | ({"semi_weight": semi["semi_weight"]} if semi else {}))}

    def _agree_across_ranks(self, finite: torch.Tensor, task: str) -> torch.Tensor:
        """Every rank must train the same task (one head's gradients) and skip a non-finite step
        together, or DDP deadlocks; one small gather checks both. It also spreads a stop request (SIGTERM
        reaches the processes at different steps): all stop after the same step."""
        task_row = self.core.task_ids.index(task)
        row = [finite.item(), float(task_row), float(self._stop_signal)]
        flags = self.accelerator.gather(torch.tensor([row], device=finite.device))
        if (flags[:, 1] != flags[0, 1]).any():
            drawn = [self.core.task_ids[int(i)] for i in flags[:, 1].tolist()]
            raise RuntimeError(f"ranks drew different tasks at step {self.state.step}: {drawn}")
        self._stop_seen = bool(flags[:, 2].max() > 0)
        return flags[:, 0].min()

    def _skip_nonfinite(self, task: str) -> None:
        self.state.nonfinite_total += 1
        self.state.nonfinite_in_row += 1
        message = {"step": self.state.step, "task": task, "nonfinite_loss": True,
                   "nonfinite_total": self.state.nonfinite_total}
        self.history.append(message)
        if self.accelerator.is_main_process:
            with (self.output_dir / "log.jsonl").open("a") as log:
                log.write(json.dumps(message) + "\n")
        if self.state.nonfinite_in_row >= self.config.max_nonfinite_in_row:
            raise NonFiniteLossError(
                f"{self.state.nonfinite_in_row} non-finite losses in a row (last task {task!r}, step "
                f"{self.state.step}): lower the learning rate, enable clipping, or check that task's data")
        return None

    # ------------------------------------------------------------------- evaluation & saving
    def _gathered_model(self) -> M2DINO | None:
        """Under FSDP the trained model whole on the main process (every process must call this, at the
        same step: each sends its shards), else None (the model is whole in every process already)."""
        return gather_exportable_model(self.accelerator, self.module, self.core, self.config)

    def _evaluate(self, log, gathered: M2DINO | None, save_best: bool = True) -> tuple[dict, dict[str, float]]:
        """Score the held-out samples on the main process (``gathered``: `_gathered_model`'s result);
        the others wait."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        metrics, scores = {}, {}
        if accelerator.is_main_process and self.val_samples:
            model = gathered if gathered is not None else self.core
            metrics, scales = validate(model, self.val_samples, batch_size=self.config.batch_size)
            scores = normalised_task_scores(metrics, scales)
            mean = float(np.mean(list(scores.values())))
            entry = {"step": self.state.step, "eval": compact_metrics(metrics), "scores": scores, "mean_score": mean}
            self.history.append(entry)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            accelerator.log({"eval/mean_score": mean, **{f"eval/{t}": s for t, s in scores.items()}},
                            step=self.state.step)
            if mean > self.state.best_score:
                self.state.best_score, self.state.best_step = mean, self.state.step
                if save_best:
                    self._save_model(self.output_dir / "best", metrics, gathered)
        accelerator.wait_for_everyone()
        return metrics, scores

    def exportable_model(self) -> M2DINO:
        """The plain M2DINO (LoRA merged into a copy; training continues on the original). Under FSDP
        the weights exist whole only where a finished `train` gathered them: on the main process."""
        if self._gathered_final is not None:
            return self._gathered_final
        if self.accelerator.distributed_type == DistributedType.FSDP:
            raise RuntimeError("under FSDP the whole model exists only on the main process, once train() finished "
                               "(each process holds a shard of the weights until then)")
        return exportable_model(self.model, self.core, self.config)

    def _save_model(self, directory: Path, metrics: dict, gathered: M2DINO | None) -> None:
        save_model(gathered if gathered is not None else self.exportable_model(), directory, metrics,
                   self._recorded_config(), f"M2DINO ({len(self.train_samples)} tasks, step {self.state.step})")

    def _save_final(self, metrics: dict, gathered: M2DINO | None) -> None:
        if self.accelerator.is_main_process:
            model = gathered if gathered is not None else self.exportable_model()
            save_final_outputs(self.output_dir, model, metrics, self._recorded_config(),
                               f"M2DINO ({len(self.train_samples)} tasks, {self.state.step} steps)", self.partner,
                               self.val_samples, self.config.batch_size)

    @property
    def partner(self):
        """The cps partner (`m2dino.training.semi.partner.CNNPartner`), else None."""
        semi = self.accelerator.unwrap_model(self.module).semi
        return semi.partner if semi is not None else None

    def _recorded_config(self) -> dict:
        config = self.config.to_dict()
        return {**config, "config_changes": self.config_changes} if self.config_changes else config

    def save_checkpoint(self) -> Path:
        state = {"counters": self.state.state_dict(), "sampler": self.sampler.state_dict(),
                 "configuration": run_configuration(self.config, self.core, self.augment),
                 "config_changes": self.config_changes,
                 **({"unlabeled": self.unlabeled.state_dict()} if self.unlabeled is not None else {})}
        return save_training_state(self.accelerator, self.output_dir / "checkpoints", self.state.step,
                                   self.config.keep_checkpoints, module=self.module, optimizer=self.optimizer,
                                   scheduler=self.scheduler, state=state, run_id=self.run_id)

