"""Crash-safe checkpoint folders: written under a temporary name, then renamed in one step."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

LATEST = "latest"


def write_atomically(target: Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp_dir)`` fills a sibling temp folder that replaces ``target`` only once complete,
    so a crash leaves either the old checkpoint or the new one, never half of one."""
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)
    return target


def write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_training_state(accelerator, directory: Path, step: int, keep: int) -> Path:
    """``accelerator.save_state`` (called on every process: each saves its RNG state) into a temp
    folder that the main process renames to ``directory/step_N``; ``latest`` then names it."""
    target = directory / f"step_{step:08d}"
    tmp = target.with_name(f".{target.name}.tmp")
    if accelerator.is_main_process:
        directory.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        write_text_atomically(directory / LATEST, target.name)
        for old in sorted(p for p in directory.glob("step_*") if p.is_dir())[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return target


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    target = Path(directory) / pointer.read_text().strip()
    if not target.is_dir():
        raise FileNotFoundError(f"{pointer} names {target.name}, which does not exist")
    return target
