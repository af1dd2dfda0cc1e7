"""The training loop shared by the three recipes, on `accelerate.Accelerator`.

One step = one task (every rank draws the same task, a different shard of it), forward, loss
(task loss, optionally uncertainty-weighted, + the MoE balancing loss), backward, clip, step.
Evaluation every ``eval_every`` steps scores held-out samples with the benchmark's scorer; the
best model by the mean normalised task score is kept in ``output_dir/best``.

A run owns its output folder: a new run refuses a folder that is not empty (``overwrite=True``
removes the previous run's outputs first); ``resume`` continues the run whose checkpoint it names
and refuses a different training or model configuration unless ``allow_config_change=True``, in
which case the saved config and the model card list each change and the step it took effect.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, set_seed
from torch import nn

from ..data import Sample
from ..data.sampling import TaskSampler
from ..data.collection import as_collection
from ..data.loading import LoaderConfig, build_train_loader
from ..data.errors import DataError
from ..data.unlabeled import UnlabeledSource
from ..evaluation.report import markdown_report
from ..models import M2DINO
from .checkpoint import (CheckpointError, latest_checkpoint, load_training_state, read_state, save_training_state,
                         write_atomically, write_into)
from .config import TrainConfig
from .lora import apply_lora, freeze_backbone, merge_lora
from .loss_weighting import UncertaintyWeighting
from .optim import parameter_groups, warmup_cosine
from .run_session import run_session
from .semi import SemiConfig, SemiSupervision, UnlabeledBatches, consistency_weight, strong_view
from .validation import error_scales, evaluate_model, normalised_task_scores


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


class LossModule(nn.Module):
    """Model + task-loss weighting (+ the semi-supervised teacher/partner) in one module, so DDP
    synchronises every trainable parameter and a checkpoint holds them all."""

    def __init__(self, model: nn.Module, core: M2DINO, weighting: UncertaintyWeighting | None,
                 semi: SemiSupervision | None = None) -> None:
        super().__init__()
        self.model, self.weighting, self.semi = model, weighting, semi
        self._core = [core]  # a list keeps the (shared) core model out of this module's children twice

    def forward(self, pixel_values: torch.Tensor, task: str, targets, unlabeled: torch.Tensor | None = None,
                strong: torch.Tensor | None = None, semi_weight: float = 0.0) -> dict[str, torch.Tensor]:
        output = self.model(pixel_values, task=task)
        parts = self._core[0].loss(output, targets, return_parts=True)
        if self.weighting is not None:
            parts["loss"] = (self.weighting(parts["task_loss"], task)
                             + self._core[0].config.balance_loss_weight * parts["balance_loss"])
        if self.semi is not None and unlabeled is not None:
            head = self._core[0].heads[task]
            unlabeled_loss, stats = self.semi.unlabeled_loss(self.model, head, task, unlabeled, strong)
            partner_loss = self.semi.partner_loss(pixel_values, task, targets)
            parts["loss"] = parts["loss"] + partner_loss + semi_weight * unlabeled_loss
            parts.update(unlabeled_loss=unlabeled_loss, partner_loss=partner_loss,
                         **{k: torch.tensor(v) for k, v in stats.items()})
        return parts


def _resolve_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


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


# What a run writes into its output folder (``overwrite`` removes these and nothing else).
# example.png: the model card's picture, drawn by the recipes (m2dino.visualize.card) after the final save.
# The task-affinity files of `recipes/unified.py --affinity-every`: measurements as made, report, grouping.
AFFINITY_OUTPUTS = ("task_affinity_measurements.jsonl", "task_affinity.json", "task_affinity_groups.json")
RUN_OUTPUTS = ("checkpoints", "best", "log.jsonl", "metrics.json", "model.safetensors", "config.json", "README.md",
               "m2dino", "summary.md", "summary.json", "example.png", "partner", *AFFINITY_OUTPUTS)
# Settings that do not change what is trained: resume may change them without being told.
FREE_ON_RESUME = ("output_dir", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


class Trainer:
    def __init__(self, model: M2DINO, train_samples: dict[str, Sequence[Sample]],
                 val_samples: dict[str, Sequence[Sample]], config: TrainConfig,
                 accelerator: Accelerator | None = None, resume: str | Path | None = None,
                 step_callback: Callable[["Trainer", int], None] | None = None, progress: bool = True,
                 overwrite: bool = False, allow_config_change: bool = False,
                 loading: LoaderConfig | None = None, semi: SemiConfig | None = None,
                 unlabeled: UnlabeledSource | None = None, unlabeled_overlap: str = "error") -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.accelerator = accelerator or Accelerator(
            mixed_precision=_resolve_precision(config.mixed_precision), gradient_accumulation_steps=config.grad_accum,
            log_with="tensorboard" if _tensorboard_available() else None, project_dir=str(self.output_dir),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        set_seed(config.seed)
        missing = set(train_samples) - set(model.task_ids)
        if missing:
            raise ValueError(f"training data for tasks the model does not have: {sorted(missing)}")
        if resume is None:
            claim_output_dir(self.output_dir, overwrite)
        if (semi is None) != (unlabeled is None):
            raise ValueError("semi-supervised training needs both a method (--semi) and unlabelled images "
                             "(--unlabeled); got only one")
        self.core = model
        self.train_samples, self.val_samples = train_samples, val_samples
        self.semi_config = semi
        config.semi = semi.to_dict() if semi is not None else None  # recorded, and compared on resume
        self._prepare_model()
        self.state = TrainState()
        self.sampler = TaskSampler({t: len(s) for t, s in train_samples.items()}, config.batch_size, config.alpha,
                                   config.seed, num_replicas=self.accelerator.num_processes,
                                   rank=self.accelerator.process_index)
        # Workers decode and augment; the loader advances self.sampler per consumed batch (exact resume).
        self.loader = build_train_loader(dict(train_samples), self.sampler, model.config.preprocessing, loading,
                                         self.accelerator.device, self.accelerator.num_processes)
        weighting = UncertaintyWeighting(list(train_samples)) if config.loss_weighting == "uncertainty" else None
        self.unlabeled = None
        if semi is not None:
            # Unlabelled images that are also validation images would leak into model selection.
            try:
                unlabeled = unlabeled.without(val_samples, on_overlap=unlabeled_overlap)
            except DataError as err:
                raise DataError(f"{err} (recipes: --unlabeled-overlap exclude)") from None
            self.unlabeled = UnlabeledBatches(unlabeled, model.config.preprocessing,
                                              max(1, round(config.batch_size * semi.unlabeled_ratio)),
                                              config.seed + 1000 * self.accelerator.process_index,
                                              (loading or LoaderConfig()).num_workers or 0)
        module = LossModule(self.model, self.core, weighting,
                            SemiSupervision(semi, self.model, self.core) if semi is not None else None)
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
        if resume is not None:
            self._resume(resume, allow_config_change)

    # ----------------------------------------------------------------------------- set-up
    def _prepare_model(self) -> None:
        config, core = self.config, self.core
        for task, samples in self.train_samples.items():
            head = core.heads[task]
            if head.fits_training_targets:  # e.g. a measurement head standardises its targets
                head.fit_targets(as_collection(samples).labels())  # labels only: no image decoded
        core.config.training = {"lora_rank": config.lora_rank, "freeze_backbone": config.freeze_backbone,
                                "steps": config.steps, "alpha": config.alpha, "loss_weighting": config.loss_weighting,
                                "tasks": sorted(self.train_samples)}
        if config.freeze_backbone:
            freeze_backbone(core)
        self.model = apply_lora(core, config.lora_rank, config.lora_alpha) if config.lora_rank else core

    def _run_configuration(self) -> dict:
        """What resume compares: the training config and the model's architecture (not its training record)."""
        model = {k: v for k, v in json.loads(json.dumps(self.core.config.to_dict())).items() if k != "training"}
        return {"train": json.loads(json.dumps(self.config.to_dict())), "model": model}

    def _resume(self, resume: str | Path, allow_config_change: bool) -> None:
        path = latest_checkpoint(self.output_dir / "checkpoints") if str(resume) == "latest" else Path(resume)
        if path is None:
            raise CheckpointError(f"--resume latest: no checkpoint under {self.output_dir / 'checkpoints'}")
        saved = read_state(path)
        changes = config_differences(saved["configuration"], self._run_configuration())
        if changes and not allow_config_change:
            listed = "; ".join(f"{c['field']}: {c['checkpoint']!r} there, {c['now']!r} now" for c in changes)
            raise CheckpointError(f"{path} was trained with another configuration ({listed}); resume with the same "
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
            self._apply_new_hyperparameters(fresh)
            self.core.config.training["config_changes"] = self.config_changes
            self.accelerator.print(f"resuming with {len(changes)} changed setting(s): "
                                   + ", ".join(c["field"] for c in changes))
        self.accelerator.print(f"resumed from {path} at step {self.state.step}")

    def _apply_new_hyperparameters(self, fresh: list[tuple[float, float]]) -> None:
        """The loaded optimizer carries the checkpoint's learning rates: put this run's back, so an
        allowed change takes effect (and the recorded config tells the truth)."""
        scheduler = self.scheduler.scheduler
        for group, (lr, weight_decay) in zip(self.optimizer.param_groups, fresh):
            group["initial_lr"], group["weight_decay"] = lr, weight_decay
        scheduler.base_lrs = [lr for lr, _ in fresh]
        for group, lr, factor in zip(self.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
            group["lr"] = lr * factor(scheduler.last_epoch)

    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return (what SIGTERM triggers)."""
        self._stop_signal = True

    # ------------------------------------------------------------------------------- loop
    def train(self) -> TrainResult:
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
                    metrics, scores = self._evaluate(log)
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
                metrics, scores = self._evaluate(log, save_best=False)
                self._save_final(metrics)
                if accelerator.is_main_process and self.state.best_step == self.state.step:
                    self._save_model(self.output_dir / "best", metrics)
                self.save_checkpoint()
        return TrainResult(self.output_dir, metrics, scores, self.state.best_score, self.state.best_step,
                           self.state.step, self.state.nonfinite_total, interrupted, self.history)

    def _step(self, batch: dict) -> dict | None:
        accelerator, config = self.accelerator, self.config
        device = accelerator.device
        semi = self._unlabeled_inputs(device)
        with accelerator.accumulate(self.module):
            parts = self.module(batch["pixel_values"].to(device, non_blocking=True), batch["task"],
                                _to_device(batch["targets"], device), **semi)
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

    def _unlabeled_inputs(self, device: torch.device) -> dict:
        """This step's unlabelled batch (weak view), its strong view and the ramped weight; {} when supervised.
        The strong view's randomness is seeded by the step, so a resumed run perturbs identically."""
        if self.semi_config is None:
            return {}
        weak = self.unlabeled.next().to(device, non_blocking=True)
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.state.step)
        mean, std = self.core.config.mean, self.core.config.std
        return {"unlabeled": weak, "strong": strong_view(weak, mean, std, generator),
                "semi_weight": consistency_weight(self.semi_config, self.state.step, self.config.steps)}

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
    def _evaluate(self, log, save_best: bool = True) -> tuple[dict, dict[str, float]]:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        metrics, scores = {}, {}
        if accelerator.is_main_process and self.val_samples:
            metrics = evaluate_model(self.core, self.val_samples, batch_size=self.config.batch_size)
            scores = normalised_task_scores(metrics, error_scales(self.val_samples))
            mean = float(np.mean(list(scores.values())))
            entry = {"step": self.state.step, "eval": _compact(metrics), "scores": scores, "mean_score": mean}
            self.history.append(entry)
            if log is not None:
                log.write(json.dumps(entry) + "\n")
                log.flush()
            accelerator.log({"eval/mean_score": mean, **{f"eval/{t}": s for t, s in scores.items()}},
                            step=self.state.step)
            if mean > self.state.best_score:
                self.state.best_score, self.state.best_step = mean, self.state.step
                if save_best:
                    self._save_model(self.output_dir / "best", metrics)
        accelerator.wait_for_everyone()
        return metrics, scores

    def exportable_model(self) -> M2DINO:
        """The plain M2DINO (LoRA merged into a copy; training continues on the original)."""
        if self.config.lora_rank:
            return merge_lora(copy.deepcopy(self.model))
        return self.core

    def _save_model(self, directory: Path, metrics: dict) -> None:
        extra = {"evaluation_table": markdown_report(metrics) if metrics else None,
                 "training_config": self._recorded_config(),
                 "model_name": f"M2DINO ({len(self.train_samples)} tasks, step {self.state.step})"}
        model = self.exportable_model()
        write_atomically(directory, lambda tmp: model.save_pretrained(tmp, card_extra=extra))

    def _save_final(self, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        folder = self.output_dir
        extra = {"evaluation_table": markdown_report(metrics) if metrics else None,
                 "training_config": self._recorded_config(),
                 "model_name": f"M2DINO ({len(self.train_samples)} tasks, {self.state.step} steps)"}
        model = self.exportable_model()
        write_into(folder, lambda tmp: model.save_pretrained(tmp, card_extra=extra))
        (folder / "metrics.json").write_text(json.dumps(_compact(metrics), indent=2) + "\n")
        partner = self.partner
        if partner is not None:  # cps: the co-trained CNN, saved and scored beside the model
            write_atomically(folder / "partner", partner.save_pretrained)
            if self.val_samples:
                scored = evaluate_model(partner, self.val_samples, batch_size=self.config.batch_size)
                (folder / "partner" / "metrics.json").write_text(json.dumps(_compact(scored), indent=2) + "\n")

    @property
    def partner(self):
        """The cps partner (`m2dino.models.partner.CNNPartner`), else None."""
        semi = self.accelerator.unwrap_model(self.module).semi
        return semi.partner if semi is not None else None

    def _recorded_config(self) -> dict:
        config = self.config.to_dict()
        return {**config, "config_changes": self.config_changes} if self.config_changes else config

    def save_checkpoint(self) -> Path:
        state = {"counters": self.state.state_dict(), "sampler": self.sampler.state_dict(),
                 "configuration": self._run_configuration(), "config_changes": self.config_changes,
                 **({"unlabeled": self.unlabeled.state_dict()} if self.unlabeled is not None else {})}
        return save_training_state(self.accelerator, self.output_dir / "checkpoints", self.state.step,
                                   self.config.keep_checkpoints, module=self.module, optimizer=self.optimizer,
                                   scheduler=self.scheduler, state=state, run_id=self.run_id)


def claim_output_dir(output_dir: Path, overwrite: bool, outputs: Sequence[str] = RUN_OUTPUTS) -> None:
    """A new run starts in an empty folder: another run's checkpoints and log would mix with its own.
    ``overwrite`` removes that run's ``outputs`` (only the names a run writes; other files stay)."""
    output_dir = Path(output_dir)
    # The recipes write the run's config (run.yaml) into its folder before its model claims the folder.
    if not output_dir.is_dir() or all(path.name == "run.yaml" for path in output_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"output folder {output_dir} is not empty (a previous run?): pass --resume latest to "
                              "continue it, --overwrite to replace it, or another --output-dir")
    for name in outputs:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def config_differences(saved: dict, now: dict) -> list[dict]:
    """``[{"field": "train.lr", "checkpoint": 0.002, "now": 0.001}, ...]`` (settings in FREE_ON_RESUME skipped)."""
    changes = []
    for part in ("train", "model"):
        before, after = saved.get(part, {}), now[part]
        for key in sorted(set(before) | set(after)):
            if part == "train" and key in FREE_ON_RESUME:
                continue
            if before.get(key) != after.get(key):
                changes.append({"field": f"{part}.{key}", "checkpoint": before.get(key), "now": after.get(key)})
    return changes


def _compact(metrics: dict) -> dict:
    """Metrics without the per-image problem lists (kept short for the JSONL log)."""
    summary = {k: v for k, v in metrics.get("summary", {}).items() if k not in ("problems", "additional_metrics")}
    return {**{k: v for k, v in metrics.items() if k != "summary"}, "summary": summary}


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
