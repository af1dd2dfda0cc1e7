"""Does the model wait on the loader? The training step with the real loader (workers decode, the
device augments) against the same kind of step on batches already prepared on the device.

The reference step takes the next of a few hundred batches that were loaded, augmented and moved to
the device beforehand, so it costs only the model's forward, backward and optimizer step. The
variant step asks the real `m2dino.data.build_train_loader` (its default settings: the resized set
in memory when it fits, else decoded on access) for the next batch with ``workers`` DataLoader
workers, augments it on the device (`m2dino.data.augment_batch`) and takes the same model step. A
ratio of 1.0 means the loader is entirely hidden behind the step; the issue's target is ≤ 1.05.
Both are timed paired and interleaved (`harness.timing.PairedTimer`).

On a 2-core CPU a worker competes with the training thread for the same cores, so the figure there
says what the loader costs on this machine, not what it would cost beside an accelerator.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from harness.timing import PairedTimer
from m2dino import M2DINO, M2DINOConfig
from m2dino.data import LoaderConfig, TaskSampler, augment_batch, build_train_loader, read_fmc

SETTINGS = (("mini", 64, 16, (0, 2, 4)), ("S", 224, 8, (0, 2)))  # backbone, image size, batch, workers


def loader_ratios(root: Path, settings: Sequence[tuple[str, int, int, Sequence[int]]] = SETTINGS,
                  rounds: int = 5, inner: int = 4, prepared: int = 64, tasks: Sequence[str] | None = None,
                  device: str = "cpu") -> list[dict]:
    """One row per (backbone, size, workers): the paired ratio real-loader step / prepared step."""
    samples = read_fmc(root, lazy=True).by_task()
    if tasks is not None:
        samples = {t: samples[t] for t in tasks}
    rows = []
    for backbone, size, batch_size, workers_list in settings:
        torch.manual_seed(0)
        model = M2DINO(M2DINOConfig(backbone=backbone, tasks=list(samples), image_size=size)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        pre = model.config.preprocessing

        def step(pixels: torch.Tensor, targets, task: str) -> None:
            output = model(pixels, task=task)
            model.loss(output, targets).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def loader(workers: int):
            sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size, seed=0)
            built = build_train_loader(samples, sampler, pre, LoaderConfig(num_workers=workers), device)
            return itertools.chain.from_iterable(itertools.repeat(built))  # epochs without end

        ready_batches = []
        for batch in itertools.islice(loader(0), prepared):
            pixels, targets = augment_batch(batch, device, pre)
            ready_batches.append((pixels, targets, batch["task"]))
        ready = itertools.cycle(ready_batches)

        def prepared_step() -> None:
            step(*next(ready))

        def real_step(stream) -> None:
            batch = next(stream)
            pixels, targets = augment_batch(batch, device, pre)
            step(pixels, targets, batch["task"])

        variants = {}
        for workers in workers_list:
            stream = loader(workers)
            variants[f"{workers} workers"] = lambda stream=stream: real_step(stream)
        timer = PairedTimer(inner=inner, warmup=2,
                            sync=torch.cuda.synchronize if torch.device(device).type == "cuda" else None)
        compared = timer.compare(prepared_step, variants, rounds)
        for workers in workers_list:
            result = compared[f"{workers} workers"]
            rows.append({"backbone": backbone, "size": size, "batch_size": batch_size, "workers": workers,
                         "device": device, "ratio": result["ratio"]["median"], "ratios": result["ratio"],
                         "prepared_step_s": statistics.median(result["reference_s"]),
                         "loader_step_s": statistics.median(result["variant_s"]),
                         "timer": timer.record()})
    return rows
