"""`train(RunConfig)`: one training run, whatever started it (Python, ``m2dino train``, a recipe's flags).

The recipe decides how the selected tasks become models: ``unified`` trains one model on all of them,
``grouped`` one per group (the registry's clinical groups, or ``groups``), ``task_specific`` one per
task. Each model trains in its own folder (the run's folder for unified, ``OUTPUT/<group or task>``
otherwise); the run's folder gets ``run.yaml``, ``summary.md`` and ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.loading import LoaderConfig
from ..models import M2DINO
from ..tasks import get_task, load_group_mapping
from ..training.checkpoint import latest_checkpoint
from ..training.data_sources import TrainingData
from ..training.engine import Trainer, TrainResult
from ..training.output_check import check_output_dir, estimate_run_bytes
from ..training.pretrain.sources import check_output_outside
from ..training.run_folder import AFFINITY_OUTPUTS, hold_run_folder, refuse_previous_run
from ..visualize.card import add_card_example
from .building import build_model, model_config, train_config
from .run_config import RunConfig
from .run_data import load_data, unlabeled_pool
from .summary import RunSummary, write_summary

AFFINITY_LOG, AFFINITY_REPORT, AFFINITY_GROUPS = AFFINITY_OUTPUTS


@dataclass
class RunOutcome:
    """What a run did: its models' results, and the model it stopped in if it was interrupted."""

    output_dir: Path
    runs: list[RunSummary]
    interrupted: str | None = None  # the model (unified, a group, a task) a stop request ended
    table: str = ""                 # the per-task markdown table of a finished run


def train(config: RunConfig, *, resume: str | None = None, overwrite: bool = False,
          allow_config_change: bool = False, progress: bool = True,
          step_callback: Callable[[Trainer, int], None] | None = None) -> RunOutcome:
    """Train every model of ``config``. ``resume`` is a checkpoint folder or ``"latest"`` (each model
    continues from its own latest checkpoint; one without a checkpoint starts from scratch). The run's
    folder is locked for the whole run (each model's trainer locks its own folder too)."""
    check_output_outside(config.output_dir, [s for s in config.data.unlabeled or () if s != "rest"], "--unlabeled")
    with hold_run_folder(config.output_dir):
        return _train(config, resume, overwrite, allow_config_change, progress, step_callback)


def _train(config: RunConfig, resume: str | None, overwrite: bool, allow_config_change: bool, progress: bool,
           step_callback: Callable[[Trainer, int], None] | None) -> RunOutcome:
    output_dir = Path(config.output_dir)
    check_outputs(config, resume, overwrite)
    if config.threads:
        torch.set_num_threads(config.threads)
    data = load_data(config.data, config.model.image_size, config.train.seed)
    tasks = list(config.data.tasks) if config.data.tasks else list(data.train)
    plan = plan_models(config, tasks)
    tracker = affinity_tracker(config, data, tasks, resume is not None)
    runs = []
    for index, (name, members) in enumerate(plan.items(), 1):
        if config.recipe != "unified":
            print(f"[{index}/{len(plan)}] {'group' if config.recipe == 'grouped' else 'task'} {name}: "
                  + ", ".join(members))
        folder = output_dir if config.recipe == "unified" else output_dir / name
        result = run_one(config, data, members, folder, resume=resume, overwrite=overwrite,
                         allow_config_change=allow_config_change, progress=progress,
                         step_callback=step_callback or tracker, on_start=lambda: config.write(output_dir))
        if result.interrupted:
            _say_interrupted(config, name, result, output_dir)
            return RunOutcome(output_dir, runs, interrupted=name)
        runs.append(RunSummary(name, members, result))
    if tracker is not None:
        write_affinity(tracker, config, tasks, output_dir)
    title = {"unified": "Semi-supervised model" if config.semi else "Unified model",
             "grouped": "Clinically grouped models", "task_specific": "Task-specific models"}[config.recipe]
    table = write_summary(output_dir, runs, title)
    print(table)
    if config.recipe == "unified":
        model_dir = runs[0].result.output_dir  # OUTPUT/stage2 after two_stage_steps
        print(f"\nmodel: {model_dir} (M2DINO.from_pretrained), best: {model_dir / 'best'}, "
              f"log: {model_dir / 'log.jsonl'}")
    return RunOutcome(output_dir, runs, table=table)


def _say_interrupted(config: RunConfig, name: str, result: TrainResult, output_dir: Path) -> None:
    if config.recipe == "unified":
        print(f"interrupted at step {result.steps_done}; resume with --resume latest --output-dir {output_dir}")
    elif config.recipe == "grouped":
        print(f"interrupted in group {name}; rerun with --resume latest to continue that group")
    else:
        print(f"interrupted in task {name}; rerun with --resume latest to continue it")


def check_outputs(config: RunConfig, resume: str | None, overwrite: bool) -> None:
    """Before any data is read: a new run needs an empty (or ``overwrite``) output folder that can be
    written and whose disk holds the model and its checkpoints (estimated from the model's size)."""
    output_dir = Path(config.output_dir)
    if resume is None and not overwrite:
        refuse_previous_run(output_dir)
    with torch.device("meta"):  # sizes only: no memory, no weights
        model = M2DINO(model_config(config.model, config.data.tasks or ["fetal_head"]))
    model_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    check_output_dir(output_dir, estimate_run_bytes(model_bytes, config.train.keep_checkpoints))


def plan_models(config: RunConfig, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Model name → its tasks, as the recipe splits the selected tasks."""
    if config.recipe == "unified":
        return {"unified": list(tasks)}
    if config.recipe == "grouped":
        return plan_groups(config.groups, tasks)
    return {task: [task] for task in tasks}


def plan_groups(groups_file: str | None, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Group → the selected tasks in it: a user's mapping file, else each task's registry group."""
    if groups_file:
        mapping = load_group_mapping(groups_file)
        unassigned = [t for t in tasks if not any(t in ids for ids in mapping.values())]
        if unassigned:
            raise ValueError(f"{groups_file}: tasks {unassigned} are in no group")
        return {g: [t for t in ids if t in tasks] for g, ids in mapping.items() if any(t in tasks for t in ids)}
    groups: dict[str, list[str]] = {}
    for task in tasks:
        groups.setdefault(get_task(task).group, []).append(task)
    return groups


def run_one(config: RunConfig, data: TrainingData, tasks: Sequence[str], output_dir: Path, *,
            resume: str | None = None, overwrite: bool = False, allow_config_change: bool = False,
            progress: bool = True, step_callback=None, on_start: Callable[[], None] | None = None) -> TrainResult:
    """Train one model on ``tasks`` into ``output_dir`` (then its card's example and the optional
    classification-head refit). ``on_start`` runs once the trainer has claimed its folder and accepted
    the checkpoint it resumes (the run's run.yaml is written then: a refused resume keeps the old one)."""
    subset = data.restrict(tasks)
    model = build_model(config.model, tasks, config.train.seed)
    if resume == "latest" and latest_checkpoint(output_dir / "checkpoints") is None:
        print(f"--resume latest: no checkpoint in {output_dir / 'checkpoints'}, starting this run from scratch")
        resume_from = None
    else:
        resume_from = resume
    loading = LoaderConfig(num_workers=config.data.num_workers, cache_dir=config.data.cache_dir,
                           skip_bad_samples=config.data.skip_bad_samples, augment_on=config.data.augment_on,
                           memory_cache_bytes=config.data.memory_cache_bytes)
    trainer = Trainer(model, subset.train, subset.val, train_config(config.train, output_dir, tasks),
                      resume=resume_from, progress=progress, overwrite=overwrite,
                      allow_config_change=allow_config_change, loading=loading, augment=config.data.augment,
                      semi=config.semi,
                      unlabeled=unlabeled_pool(config.data, subset), unlabeled_overlap=config.data.unlabeled_overlap,
                      step_callback=step_callback)
    if on_start is not None:
        on_start()
    result = trainer.train()
    if trainer.accelerator.is_main_process and (result.output_dir / "README.md").is_file():
        add_card_example(trainer.exportable_model(), result.output_dir)  # the card shows what the model outputs
    if config.two_stage_steps and not result.interrupted:
        from ..training.classifier_refit import refit_classification_heads

        result = refit_classification_heads(trainer.exportable_model(), subset,
                                            train_config(config.train, output_dir, tasks), config.two_stage_steps,
                                            loading, progress=progress, resume=resume is not None,
                                            overwrite=overwrite, augment=config.data.augment)
    return result


def affinity_tracker(config: RunConfig, data: TrainingData, tasks: list[str], resuming: bool):
    """The task-affinity measurement of ``affinity_every`` (None when off)."""
    if not config.affinity_every:
        return None
    from ..training.task_affinity import AffinityTracker

    if config.affinity_groups is not None and not 1 <= config.affinity_groups <= len(tasks):
        raise ValueError(f"--affinity-groups {config.affinity_groups}: expected 1..{len(tasks)} (the selected tasks)")
    return AffinityTracker(data.restrict(tasks).train, config.affinity_every, config.train.batch_size,
                           config.train.seed, log=Path(config.output_dir) / AFFINITY_LOG, resume=resuming)


def write_affinity(tracker, config: RunConfig, tasks: list[str], output_dir: Path) -> None:
    """OUTPUT/task_affinity.json (matrix, measurements, groupings) and the recommended grouping as a
    ``groups`` file, OUTPUT/task_affinity_groups.json (written by the main process only)."""
    from accelerate import PartialState

    from ..training.task_affinity import recommended_groups

    if not PartialState().is_main_process:
        return
    report = tracker.report(plan_groups(None, tasks))
    groups = recommended_groups(report, config.affinity_groups)
    (output_dir / AFFINITY_REPORT).write_text(json.dumps(report, indent=1) + "\n")
    (output_dir / AFFINITY_GROUPS).write_text(json.dumps(groups, indent=1) + "\n")
    print(f"task affinity: {len(report['measurements'])} measurements; recommended grouping "
          f"{output_dir / AFFINITY_GROUPS}: " + "; ".join(", ".join(g) for g in groups.values()))

