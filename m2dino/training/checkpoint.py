"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder ``checkpoints/step_N`` holds

- ``model.safetensors``: the trained module (model + loss weighting);
- ``optimizer.safetensors``: the optimizer's per-parameter tensors (``state.<index>.<name>``);
- ``rng_<rank>.json`` / ``rng_<rank>.safetensors``: each process's Python, NumPy and torch RNG states;
- ``training_state.json``, written last (its presence marks a complete checkpoint): counters, the
  sampler's and the scheduler's state, the optimizer's hyper-parameters, the grad scaler, the run's
  id and the training and model configurations it was made with (resume compares against them).

Nothing here is ever unpickled (accelerate's ``save_state`` writes pickles, so it is not used), with
one exception: under FSDP or DeepSpeed the model and optimizer exist only as shards that accelerate's
``save_state`` gathers, so those runs store them (and the RNG states) its way, ``.pkl``/``.bin`` files
included, and resuming them unpickles those files; the JSON part is the same.
Folders are written under a temporary name and renamed in one step, so a crash or a full disk
leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import DistributedType
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

LATEST = "latest"
STATE_NAME = "training_state.json"
MODEL_NAME = "model.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: missing, incomplete, from another format or another model."""


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def disk_error(err: OSError, target: Path, needed: int | None = None) -> OSError:
    """One line naming the folder that could not be written and, for a full disk, the space it needed."""
    if err.errno == errno.ENOSPC:
        free = shutil.disk_usage(_existing_parent(target)).free
        need = f"about {needed / 2**20:.1f} MB needed, " if needed else ""
        return OSError(errno.ENOSPC, f"no space left to write {target} ({need}{free / 2**20:.1f} MB free); "
                                     "the partial folder was removed")
    return OSError(err.errno, f"cannot write {target}: {err.strerror or err}")


# What a failed write raises: OSError from Python, SafetensorError ("... (os error 28)") from safetensors,
# RuntimeError ("enforce fail at inline_container.cc") from torch.save.
WRITE_ERRORS = (OSError, SafetensorError, RuntimeError)


def as_os_error(err: BaseException) -> OSError:
    """A write failure as an OSError with its errno where the message carries one."""
    if isinstance(err, OSError):
        return err
    found = re.search(r"os error (\d+)", str(err))
    if found:
        code = int(found.group(1))
        return OSError(code, os.strerror(code))
    return OSError(errno.EIO, str(err).splitlines()[0] if str(err) else type(err).__name__)


def _fill_temp_folder(tmp: Path, write: Callable[[Path], None], named: Path) -> None:
    """``write(tmp)`` into a fresh ``tmp``; on a write failure ``tmp`` is removed and one OSError names ``named``."""
    _remove(tmp)
    try:
        tmp.mkdir(parents=True)
        write(tmp)
    except WRITE_ERRORS as err:
        _remove(tmp)
        raise disk_error(as_os_error(err), named) from err


def write_into(folder: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp_dir)`` fills a temp folder inside ``folder`` whose files then move into ``folder``,
    so a failed write (full disk) leaves no partial file there; the error is one OSError naming ``folder``."""
    folder = Path(folder)
    tmp = folder / ".incoming.tmp"
    _fill_temp_folder(tmp, write, folder)
    for file in tmp.iterdir():
        os.replace(file, folder / file.name)
    tmp.rmdir()


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp_dir)`` fills a sibling temp folder that replaces ``target`` only once complete.
    On an OSError (full disk, read-only folder) the temp folder is removed and one clear OSError raised."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    _fill_temp_folder(tmp, write, target)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    _remove(old)
    return target


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- state <-> files
def _rng_state() -> tuple[dict, dict[str, torch.Tensor]]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {"python": [version, list(internal), gauss],
            "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    tensors = {"numpy_keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    return meta, tensors


def _set_rng_state(meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = meta["numpy"]
    np.random.set_state((numpy["kind"], tensors["numpy_keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict, dict[str, torch.Tensor]]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return {"param_groups": state["param_groups"], "scalars": scalars}, tensors


def _load_optimizer(optimizer: torch.optim.Optimizer, meta: dict, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _scheduler_state(scheduler) -> dict:
    # LambdaLR stores a function lambda as None (it is rebuilt from the config), so its state is plain JSON.
    return scheduler.state_dict()


def save_training_state(accelerator, directory: Path, step: int, keep: int, *, module: torch.nn.Module,
                        optimizer, scheduler, state: dict, run_id: str) -> Path:
    """Write ``directory/step_N`` (every process writes its RNG state; the main process the rest),
    point ``latest`` at it, then delete this run's checkpoints beyond the newest ``keep``.
    ``state`` is the JSON part (counters, sampler, configurations)."""
    directory = Path(directory)
    target = directory / f"step_{step:08d}"
    tmp = target.with_name(f".{target.name}.tmp")
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    failure = None
    sharded = _is_sharded(accelerator)
    try:
        if sharded:  # the shards are reachable only through accelerate (it pickles the optimizer and RNG states)
            complete_optimizer_state(optimizer)
            accelerator.save_state(str(tmp), safe_serialization=True)
        else:
            rank = accelerator.process_index
            meta, tensors = _rng_state()
            save_file(tensors, str(tmp / f"rng_{rank}.safetensors"))
            (tmp / f"rng_{rank}.json").write_text(json.dumps(meta))
        if accelerator.is_main_process:
            full = {"format": FORMAT_VERSION, "run_id": run_id, "num_processes": accelerator.num_processes,
                    "storage": "accelerate" if sharded else "safetensors", **state}
            if not sharded:
                weights = {k: v.detach().cpu().contiguous()
                           for k, v in accelerator.unwrap_model(module).state_dict().items()}
                save_file(weights, str(tmp / MODEL_NAME))
                optimizer_meta, optimizer_tensors = _optimizer_state(optimizer)
                save_file(optimizer_tensors, str(tmp / OPTIMIZER_NAME))
                scaler = accelerator.scaler.state_dict() if accelerator.scaler is not None else None
                full.update(optimizer=optimizer_meta, scheduler=_scheduler_state(scheduler), scaler=scaler)
            (tmp / STATE_NAME).write_text(json.dumps(full, indent=1))  # last: marks the checkpoint complete
    except WRITE_ERRORS as err:
        failure = as_os_error(err)
    failed = torch.tensor([float(failure is not None)], device=accelerator.device)
    if accelerator.num_processes > 1:  # every process must see any one's failure, or the main one would publish
        failed = accelerator.reduce(failed, reduction="sum")  # a checkpoint that lacks a file
    if failed.item():
        if accelerator.is_main_process:
            _remove(tmp)
        if failure is None:
            raise OSError(errno.EIO, f"cannot write {target}: another process failed to write its part")
        raise disk_error(failure, target, _checkpoint_bytes(accelerator.unwrap_model(module), optimizer)) from None
    if accelerator.is_main_process:
        _remove(target)
        os.replace(tmp, target)
        write_text_atomically(directory / LATEST, target.name)
        for old in run_checkpoints(directory, run_id)[:-keep]:
            _remove(old)
    accelerator.wait_for_everyone()
    return target


def complete_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every trainable parameter that no step has reached yet (an expert or a head not yet drawn,
    the task embedding of a dense model) the state Adam/AdamW starts from: step 0, zero moments. They
    continue from it exactly as from no state (their first step makes the same one), but torch's sharded
    loader (DCP, strict) refuses a checkpoint without it ("Missing key in checkpoint state_dict:
    optimizer.state.model.task_embedding.weight.step"). Other optimizers are left as they are."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper holds the torch optimizer
    if not isinstance(inner, (torch.optim.Adam, torch.optim.AdamW)):
        return
    for group in inner.param_groups:
        on_device = group.get("capturable") or group.get("fused")  # where Adam keeps its step counter
        for p in group["params"]:
            if p.requires_grad and not inner.state[p]:
                state = {"step": torch.zeros((), dtype=torch.float32, device=p.device if on_device else None),
                         "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                         "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                if group.get("amsgrad"):
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                inner.state[p] = state


def _is_sharded(accelerator) -> bool:
    """FSDP and DeepSpeed hold model and optimizer in shards that only accelerate's save_state gathers."""
    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED,
                                            DistributedType.MEGATRON_LM)


def _checkpoint_bytes(module: torch.nn.Module, optimizer) -> int:
    """What a checkpoint needs on disk: the weights and the optimizer's per-parameter tensors."""
    tensors = list(module.state_dict().values())
    tensors += [v for state in optimizer.state_dict()["state"].values() for v in state.values()
                if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def read_state(path: Path) -> dict:
    """The JSON part of a complete checkpoint, or one clear error saying why it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"--resume {path}: no such checkpoint folder; pass 'latest' (the newest checkpoint in "
                              "the output folder) or a folder such as runs/unified/checkpoints/step_00000400")
    state_file = path / STATE_NAME
    if not state_file.is_file():
        if any(path.glob("*.pkl")) or (path / "optimizer.bin").exists():
            raise CheckpointError(f"{path} is a checkpoint of an older m2dino (pickle files); it is not loaded, "
                                  "because unpickling can run code: start a new run")
        raise CheckpointError(f"{path} is not a complete checkpoint (no {STATE_NAME})")
    try:
        state = json.loads(state_file.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{state_file}: not valid JSON ({err})") from None
    if state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{state_file}: checkpoint format {state.get('format')!r}, expected {FORMAT_VERSION}")
    return state


def load_training_state(accelerator, path: Path, *, module: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore what `save_training_state` wrote (tensors with safetensors, the rest from JSON) and
    return the JSON part for the caller's own counters."""
    path = Path(path)
    state = read_state(path)
    if state["num_processes"] != accelerator.num_processes:
        raise CheckpointError(f"{path} was written by {state['num_processes']} processes, this run has "
                              f"{accelerator.num_processes}: resume with the same number")
    if (state.get("storage") == "accelerate") != _is_sharded(accelerator):
        written = "a sharded (FSDP/DeepSpeed)" if state.get("storage") == "accelerate" else "a non-sharded"
        raise CheckpointError(f"{path} was written by {written} run; resume it with the same distributed setup")
    if _is_sharded(accelerator):
        accelerator.load_state(str(path))  # unpickles accelerate's optimizer and RNG files (see the README)
        return state
    target = accelerator.unwrap_model(module)
    weights = load_file(str(path / MODEL_NAME))
    own = target.state_dict()
    wrong = [k for k in own if k in weights and weights[k].shape != own[k].shape]
    missing, unexpected = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if wrong or missing or unexpected:
        first = (f"{wrong[0]} is {tuple(weights[wrong[0]].shape)} there, {tuple(own[wrong[0]].shape)} here" if wrong
                 else f"{(missing or unexpected)[0]} is {'missing there' if missing else 'not in this model'}")
        raise CheckpointError(f"{path} holds a different model ({len(wrong)} tensors of another shape, "
                              f"{len(missing)} missing, {len(unexpected)} extra; {first}): resume with the "
                              "backbone, tasks and architecture flags it was trained with")
    target.load_state_dict(weights)
    try:
        _load_optimizer(optimizer, state["optimizer"], load_file(str(path / OPTIMIZER_NAME)))
    except ValueError as err:  # e.g. another number of parameter groups after an lr change
        raise CheckpointError(f"{path}: the optimizer state does not fit this run ({err})") from None
    scheduler.load_state_dict(state["scheduler"])
    if accelerator.scaler is not None and state.get("scaler"):
        accelerator.scaler.load_state_dict(state["scaler"])
    rank = accelerator.process_index
    _set_rng_state(json.loads((path / f"rng_{rank}.json").read_text()),
                   load_file(str(path / f"rng_{rank}.safetensors")))
    return state


# ------------------------------------------------------------------------------- discovery
def latest_name(directory: Path) -> str | None:
    pointer = Path(directory) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def run_checkpoints(directory: Path, run_id: str) -> list[Path]:
    """This run's complete checkpoints, oldest first (other runs' folders are never touched)."""
    mine = []
    for folder in sorted(p for p in Path(directory).glob("step_*") if p.is_dir()):
        try:
            if json.loads((folder / STATE_NAME).read_text()).get("run_id") == run_id:
                mine.append(folder)
        except (OSError, json.JSONDecodeError):
            continue
    return mine


def latest_checkpoint(directory: Path) -> Path | None:
    name = latest_name(directory)
    if name is None:
        return None
    target = Path(directory) / name
    if not (target / STATE_NAME).is_file():
        raise CheckpointError(f"{Path(directory) / LATEST} names {target.name}, which is not a complete checkpoint")
    return target
