"""Predict images or folders with a model and write, per image, its overlay PNG and its JSON.

What `m2dino predict` runs; usable from Python with the same arguments.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..data.adapters.common import IMAGE_SUFFIXES
from ..image import ImageFormatError, to_rgb_uint8
from ..limits import LimitError, current, environment_variable, positive_int
from ..models import M2DINO
from ..models.batch_prediction import predict_batches
from .export import predictions_to_dict
from .panel import draw_panel, panel_layout, panel_size


@dataclass
class PredictJob:
    """One input image and where its results go (``<out>/<stem>_overlay.png`` and ``<out>/<stem>.json``)."""

    source: Path
    overlay: Path
    json: Path


@dataclass
class PredictReport:
    written: list[PredictJob] = field(default_factory=list)
    unreadable: dict[Path, str] = field(default_factory=dict)   # image -> why


def plan_jobs(inputs: Sequence[str | Path], out: str | Path) -> list[PredictJob]:
    """Images named directly land in ``out``; a folder's images (recursively) keep their sub-folders
    under ``out/<folder name>``. Two inputs that would write the same file are an error up front."""
    out = Path(out)
    jobs: list[PredictJob] = []
    for entry in map(Path, inputs):
        if entry.is_dir():
            found = sorted(p for p in entry.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{entry}: no image files (expected {', '.join(IMAGE_SUFFIXES)})")
            pairs = [(p, out / entry.resolve().name / p.relative_to(entry).with_suffix("")) for p in found]
        elif entry.is_file():
            pairs = [(entry, out / entry.stem)]
        else:
            raise FileNotFoundError(f"image or folder not found: {entry}")
        jobs += [PredictJob(src, stem.with_name(stem.name + "_overlay.png"), stem.with_name(stem.name + ".json"))
                 for src, stem in pairs]
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.json in seen:
            raise ValueError(f"{seen[job.json]} and {job.source} would both write {job.json}; "
                             "predict them into separate --out folders")
        seen[job.json] = job.source
    return jobs


def check_writable(out: str | Path) -> Path:
    """Create ``out`` and prove a file can be written there, before any model time is spent."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".m2dino_write_check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"output folder {out} cannot be written: {err.strerror or err}") from err
    return out


def check_panel_size(image_size: tuple[int, int], tasks: int, tile_width: int | None, source: str) -> None:
    """Refuse an overlay panel (`draw_panel`'s layout) beyond `m2dino.limits`' panel bound before it is drawn:
    a tall, narrow scan scaled to a wide tile can need gigabytes."""
    layout = panel_layout(image_size, tasks, tile_width)
    tile_width, tile_height = layout[:2]
    pixels = math.prod(panel_size(layout))
    bound = current().panel_pixels
    if pixels > bound:
        raise LimitError(f"{source}: its overlay ({tasks} tiles of {tile_width}×{tile_height}) would have {pixels:,} "
                         f"pixels, beyond m2dino's limit of {bound:,}: choose a smaller --tile-width or fewer tasks "
                         f"(or raise {environment_variable('panel_pixels')})")


def write_predictions(model: M2DINO, inputs: Sequence[str | Path], out: str | Path, tasks: Sequence[str],
                      batch_size: int = 8, progress: bool = True, tile_width: int | None = None) -> PredictReport:
    """Predict ``tasks`` on every image of ``inputs`` (files or folders), ``batch_size`` images per forward pass.

    Unreadable images (not an image, too many pixels, an overlay too large to draw) are skipped and
    returned in the report (the rest is still written); coordinates in the JSON are the image's original
    pixels, turned as the file's EXIF orientation says (as image viewers show it).
    """
    positive_int("batch_size", batch_size, "batch_size")
    if tile_width is not None:
        positive_int("tile_width", tile_width, "tile_width")
    for task in tasks:
        model.task_spec(task)  # an unknown task fails before any image is read
    jobs = plan_jobs(inputs, out)
    check_writable(out)
    report = PredictReport()
    bar = tqdm(total=len(jobs), desc="predict", unit="img", disable=not progress)
    for start in range(0, len(jobs), batch_size):
        batch: list[tuple[PredictJob, np.ndarray]] = []
        for job in jobs[start:start + batch_size]:
            try:
                image = to_rgb_uint8(job.source, exif_orientation=True)  # as image viewers show the file
                check_panel_size(image.shape[:2], len(tasks), tile_width, str(job.source))
                batch.append((job, image))
            except (ImageFormatError, LimitError, OSError) as err:  # reported; the other images are still written
                report.unreadable[job.source] = str(err)
        images = [image for _, image in batch]
        # the readable images of this batch in one forward pass per task (read once, drawn with every task)
        per_task = {task: list(predict_batches(model, images, task, batch_size=len(images))) for task in tasks
                    } if images else {}
        for i, (job, image) in enumerate(batch):
            predictions = {task: per_task[task][i] for task in tasks}
            job.overlay.parent.mkdir(parents=True, exist_ok=True)
            draw_panel(image, predictions, model.task_spec, tile_width=tile_width).save(job.overlay)
            record = predictions_to_dict(predictions, model.task_spec, source=str(job.source),
                                         image_size=image.shape[:2])
            job.json.write_text(json.dumps(record, indent=1))
            report.written.append(job)
        bar.update(len(jobs[start:start + batch_size]))
    bar.close()
    return report
