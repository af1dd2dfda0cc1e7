"""What the spatial-prior branch (``M2DINOConfig.spatial_prior``) costs: training step time and parameters.

The recipe study's baseline model (``mini`` backbone, 128 px, MoE in blocks 2-3 with 4 experts, top-1,
decoder width 32) with and without the branch, built from the same seed, timed one training step
(forward, the task's loss, backward, AdamW) against the other, paired and interleaved
(`harness.timing`), on one CPU thread, per label kind: a segmentation task and a detection task (the
branch runs and feeds their decoders) and a classification task (the branch does not run: a batch
whose heads read no feature levels skips it). An identical copy of the baseline
timed as one more variant (A/A) gives the noise floor. The study's mix weights each kind by its number
of study tasks (tasks are drawn uniformly).

    python benchmarks/spatial_prior.py            # writes benchmarks/results/spatial_prior.{md,json}
    python benchmarks/spatial_prior.py --quick    # 2 rounds at batch 2, written to a temporary folder
    python benchmarks/spatial_prior.py --rerender # rewrite results/spatial_prior.md from its .json
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
from contextlib import nullcontext

import torch

from harness.machine import cpu_name
from harness.report import add_output_arguments, command_line, fmt_ratio, output_paths, read_result, write_result
from harness.timing import PairedTimer
from m2dino import M2DINO, M2DINOConfig

SIZE = 128
# One task per label kind, and how many of the recipe study's 10 tasks have that kind.
KINDS = {"segmentation": ("breast_lesion", 6), "detection": ("thyroid_nodule_det", 1),
         "classification": ("breast_3cls", 3)}


def build(task: str, spatial_prior: bool, seed: int) -> M2DINO:
    torch.manual_seed(seed)
    config = M2DINOConfig(backbone="mini", tasks=[task], moe_blocks=(2, 3), num_experts=4, top_k=1,
                          decoder_features=32, image_size=SIZE, spatial_prior=spatial_prior)
    return M2DINO(config).train()


def targets(kind: str, batch: int, generator: torch.Generator):
    if kind == "segmentation":
        return torch.randint(0, 2, (batch, SIZE, SIZE), generator=generator)
    if kind == "detection":
        corner = torch.randint(0, SIZE // 2, (batch, 1, 2), generator=generator).float()
        return list(torch.cat([corner, corner + SIZE / 4], dim=-1))
    return torch.randint(0, 3, (batch,), generator=generator)


def training_step(model: M2DINO, task: str, pixels: torch.Tensor, target, precision: str):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step() -> None:
        with autocast:
            loss = model.loss(model(pixels, task=task), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def run(batch: int, rounds: int, precisions: list[str], seed: int) -> dict:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, SIZE, SIZE, generator=generator)
    timer = PairedTimer(warmup=1)
    params, cells = {}, []
    for kind, (task, _) in KINDS.items():
        target = targets(kind, batch, generator)
        base, prior = build(task, False, seed), build(task, True, seed)
        params[kind] = {"model": sum(p.numel() for p in base.parameters()),
                        "with_prior": sum(p.numel() for p in prior.parameters())}
        for precision in precisions:
            times = timer.compare(training_step(base, task, pixels, target, precision),
                                  {"spatial_prior": training_step(prior, task, pixels, target, precision),
                                   "A/A": training_step(copy.deepcopy(base), task, pixels, target, precision)},
                                  rounds)
            cells.append({"kind": kind, "task": task, "precision": precision,
                          "reference_s": statistics.median(times["spatial_prior"]["reference_s"]),
                          **{name: t["ratio"] for name, t in times.items()}})
    branch = build("breast_lesion", True, seed).spatial_prior
    return {"command": command_line(), "batch": batch, "rounds": rounds, "size": SIZE, "threads": 1,
            "machine": {"cpu": cpu_name(), "python": platform.python_version(), "torch": torch.__version__},
            "branch_parameters": sum(p.numel() for p in branch.parameters()), "parameters": params,
            "timer": timer.record(), "cells": cells, "mix": mix(cells, precisions)}


def mix(cells: list[dict], precisions: list[str]) -> dict:
    """Per precision: the study's expected step-time ratio, each kind's median step weighted by its task count."""
    result = {}
    for precision in precisions:
        rows = [c for c in cells if c["precision"] == precision]
        base = sum(KINDS[c["kind"]][1] * c["reference_s"] for c in rows)
        prior = sum(KINDS[c["kind"]][1] * c["reference_s"] * c["spatial_prior"]["median"] for c in rows)
        result[precision] = prior / base
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    branch = result["branch_parameters"]
    lines = ["# The spatial-prior branch: training step time and parameters", "",
             f"`mini` backbone, {result['size']} px, MoE blocks 2-3 (4 experts, top-1), decoder width 32, batch "
             f"{result['batch']}, {result['threads']} CPU thread ({m['cpu']}; Python {m['python']}, torch "
             f"{m['torch']}). One training step (forward, loss, backward, AdamW) with the branch against the same "
             f"model without it, paired and interleaved, {result['rounds']} rounds; a ratio is the median "
             "(range) of the within-pair ratios; A/A times an identical copy of the baseline (the noise floor). "
             f"Command: `{result['command']}`.", "",
             f"The branch has **{branch:,}** parameters "
             f"({100 * branch / result['parameters']['segmentation']['model']:.1f} % of a one-task segmentation "
             "model; the heads gain none).", "",
             "| kind (task) | precision | baseline step (ms) | with the branch / baseline | A/A |",
             "|---|---|---|---|---|"]
    for c in result["cells"]:
        lines.append(f"| {c['kind']} (`{c['task']}`) | {c['precision']} | {1000 * c['reference_s']:.0f} | "
                     f"{fmt_ratio(c['spatial_prior'])} | {fmt_ratio(c['A/A'])} |")
    lines += ["", "The recipe study's mix (6 segmentation, 1 detection, 3 classification tasks drawn uniformly): "
              + ", ".join(f"**{ratio:.2f}×** the baseline's step time in {p}" for p, ratio in result["mix"].items())
              + ". Classification batches do not run the branch, so their ratio is the noise floor.", "",
              f"Pairs: {result['timer']['pairs']} ({result['timer']['rerun']} re-run for interference, "
              f"{result['timer']['kept_disturbed']} kept although disturbed).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="images per step, default 16 (--quick: 2)")
    parser.add_argument("--rounds", type=int, default=None, help="timed pairs per variant, default 9 (--quick: 2)")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="fp32 (default) and/or bf16 autocast (slow on a CPU without AMX)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run in seconds")
    add_output_arguments(parser, "spatial_prior")
    args = parser.parse_args(argv)
    md_path, json_path = output_paths(args)
    if args.rerender:
        result = read_result(json_path)
    else:
        batch = args.batch or (2 if args.quick else 16)
        rounds = args.rounds or (2 if args.quick else 9)
        if batch < 1 or rounds < 1:
            parser.error(f"--batch and --rounds must be positive; got {batch}, {rounds}")
        result = run(batch, rounds, args.precision, args.seed)
    report = markdown(result)
    print(report)
    write_result(md_path, json_path, report, result, indent=2)


if __name__ == "__main__":
    main()
