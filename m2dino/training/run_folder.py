"""A training run's folder: which files it owns, claiming it, and writing models and metrics into it.

A run owns its output folder: a new run refuses a folder that is not empty (``overwrite=True``
removes the previous run's outputs first, and nothing else), and while it runs it holds the folder's
lock (`hold_run_folder`), so a second run or a resume into the same folder is refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.report import markdown_report
from ..models import M2DINO
from .checkpoint import write_atomically, write_into
from .validation import evaluate_model

# What a run writes into its output folder (``overwrite`` removes these and nothing else).
# example.png: the model card's picture, drawn by the recipes (m2dino.visualize.card) after the final save.
# The task-affinity files of `recipes/unified.py --affinity-every`: measurements as made, report, grouping.
AFFINITY_OUTPUTS = ("task_affinity_measurements.jsonl", "task_affinity.json", "task_affinity_groups.json")
# run.yaml: the run's config, written by the recipes (m2dino.recipes.run_config) once the folder is claimed.
RUN_OUTPUTS = ("checkpoints", "best", "log.jsonl", "metrics.json", "model.safetensors", "config.json", "README.md",
               "m2dino", "summary.md", "summary.json", "example.png", "partner", "run.yaml", *AFFINITY_OUTPUTS)


# The lock file of a running run (removed when the run ends; left behind only by a killed one).
LOCK_FILE = ".m2dino-run.lock"


class RunFolderInUse(FileExistsError):
    """Another live process (group) holds the output folder's lock; the message names its pid."""


class RunFolderLock:
    """This process's hold on a run folder's lock (`hold_run_folder`); ``with lock:`` holds it (taking
    it again if it was released) and releases it however the block ends."""

    def __init__(self, folder: Path, main: bool, num_processes: int) -> None:
        self.folder, self.main, self.num_processes = folder, main, num_processes
        self.held = False
        self._finalizer: weakref.finalize | None = None

    def acquire(self) -> RunFolderLock:
        if self.held:
            return self
        key = failure = error = None
        if self.main:
            try:
                key = _take(self.folder)
            except OSError as err:  # in use, or the folder cannot be written
                failure, error = err, str(err)
        if self.num_processes > 1:  # every process of the launch learns the main process's outcome
            from accelerate.utils import broadcast_object_list

            error = broadcast_object_list([error])[0]
        if failure is not None:
            raise failure
        if error is not None:
            raise RunFolderInUse(error)
        self.held = True
        if key is not None:  # a lock object dropped without release (a refused __init__) lets go when collected
            self._finalizer = weakref.finalize(self, _give, key)
        return self

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._finalizer is not None:
                self._finalizer()  # runs _give once
                self._finalizer = None

    def __enter__(self) -> RunFolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def hold_run_folder(folder: str | Path, accelerator=None) -> RunFolderLock:
    """Take ``folder``'s lock for this run (creating the folder), or raise `RunFolderInUse` naming the
    pid of the process that holds it. A lock left by a killed run is taken over, with a message.

    Distributed launches: one lock per launch. Only the main process takes it (its pid is the one
    named); the others learn the outcome by a broadcast, so a refused launch stops on every process.
    Within one process the lock is re-entrant (a grouped run's top folder and a unified run's trainer
    share it): another process, or another launch, is what it keeps out."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # Before any Accelerator (a recipe's top folder): the launch's state as the Accelerator will make
    # it, which joins CPU processes into one group only when asked to (ACCELERATE_USE_CPU).
    state = accelerator if accelerator is not None else PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    return RunFolderLock(Path(folder), state.is_main_process, state.num_processes).acquire()


# This process's locks: real path -> [open lock file, holders, pid, whether the lock made the folder].
# An OS lock (flock) is held by an open file description, so the OS releases it the moment its
# process dies, whatever killed it: a lock whose holder is gone is free by construction, and "stale"
# needs no pid check. The pid written into the file only names the holder in a refusal, or the
# killed run whose lock is taken over. (flock is advisory and local: it does not lock a folder
# against another machine on NFS.)
_HELD: dict[str, list] = {}


def _take(folder: Path) -> str:
    """The lock of ``folder`` taken (or, if this process holds it, counted once more); its key."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"output folder {folder} is not writable: {err.strerror or err}") from None
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    path = Path(key) / LOCK_FILE
    while True:
        try:
            handle = open(path, "a+")
        except OSError as err:
            raise OSError(err.errno, f"output folder {folder} is not writable: {err.strerror or err}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunFolderInUse(f"output folder {folder} is in use by another run (pid {holder}); wait for it to "
                                 "finish or stop it, or choose another --output-dir") from None
        # The previous holder removes the file as it lets go: a lock on a removed file guards nothing.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(handle.fileno())
        if current is not None and (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev):
            break
        handle.close()
    handle.seek(0)
    previous = handle.read().strip()
    if previous:
        print(f"{folder}: taking over the lock left by pid {previous}, which is no longer running "
              "(a killed run)", file=sys.stderr)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _HELD[key] = [handle, 1, os.getpid(), created]
    return key


def _give(key: str) -> None:
    entry = _HELD.get(key)
    if entry is None or entry[2] != os.getpid():  # a forked worker's copy: only the holder lets go
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _HELD[key]
        Path(key, LOCK_FILE).unlink(missing_ok=True)  # removed while still locked, then let go
        entry[0].close()
        if entry[3]:  # a refused run leaves no empty folder behind that it made
            try:
                Path(key).rmdir()
            except OSError:  # not empty (the run wrote into it) or already gone
                pass


def has_outputs(folder: Path) -> bool:
    """Whether ``folder`` holds anything but a run's lock file."""
    return folder.is_dir() and any(p.name != LOCK_FILE for p in folder.iterdir())


def refuse_previous_run(output_dir: Path) -> None:
    """A folder holding another run's outputs is refused, naming the ways on."""
    if has_outputs(output_dir):
        raise FileExistsError(f"output folder {output_dir} is not empty (a previous run?): pass --resume latest to "
                              "continue it, --overwrite to replace it, or another --output-dir")


def claim_output_dir(output_dir: Path, overwrite: bool, outputs: Sequence[str] = RUN_OUTPUTS) -> None:
    """A new run starts in an empty folder: another run's checkpoints and log would mix with its own.
    ``overwrite`` removes that run's ``outputs`` (only the names a run writes; other files stay)."""
    output_dir = Path(output_dir)
    if not overwrite:
        refuse_previous_run(output_dir)
        return
    for name in outputs:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def compact_metrics(metrics: dict) -> dict:
    """Metrics without the per-image problem lists (kept short for the JSONL log)."""
    summary = {k: v for k, v in metrics.get("summary", {}).items() if k not in ("problems", "additional_metrics")}
    return {**{k: v for k, v in metrics.items() if k != "summary"}, "summary": summary}


def save_model(model: M2DINO, directory: Path, metrics: dict, recorded_config: dict, name: str,
               replace_folder: bool = True) -> None:
    """The model with its card (evaluation table, training config) into ``directory``: replacing the
    folder atomically (``best/``), or writing its files into it atomically (the run's own folder)."""
    extra = {"evaluation_table": markdown_report(metrics) if metrics else None,
             "training_config": recorded_config, "model_name": name}
    write = write_atomically if replace_folder else write_into
    write(directory, lambda tmp: model.save_pretrained(tmp, card_extra=extra))


def save_final_outputs(folder: Path, model: M2DINO, metrics: dict, recorded_config: dict, name: str,
                       partner=None, val_samples: dict | None = None, batch_size: int = 16) -> None:
    """The trained model, its metrics.json and (cps) the co-trained partner, scored beside it."""
    save_model(model, folder, metrics, recorded_config, name, replace_folder=False)
    (folder / "metrics.json").write_text(json.dumps(compact_metrics(metrics), indent=2) + "\n")
    if partner is not None:
        write_atomically(folder / "partner", partner.save_pretrained)
        if val_samples:
            scored = evaluate_model(partner, val_samples, batch_size=batch_size)
            (folder / "partner" / "metrics.json").write_text(json.dumps(compact_metrics(scored), indent=2) + "\n")
