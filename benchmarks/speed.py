"""Model speed, as ratios measured side by side in one run (issue 6): backbone vs timm, MoE overhead,
all 27 tasks at once, and (on a GPU) training throughput and model FLOP utilisation.

1. **Backbone vs timm**: m2dino's `DINOv3Backbone` (no MoE) against timm's model with the same weights,
   forward and training step (forward + backward + AdamW step, loss = mean of the final tokens).
2. **MoE overhead**: task-routed MoE (E experts, top-k) against the dense model, forward and training step
   (loss = mean of tokens + 0.01 × balancing loss), single-task and batches mixing 4 tasks.
   Measured per block (a dense block against the same block with its MLP turned into a TaskMoE: the only
   place the two models differ) for the grid, and on the whole backbone for a subset, which checks the
   whole-model ratio predicted from the block ratio: ``1 + (n_moe / L) · (r_block − 1)``. Both tables
   have an A/A row: a second, identical dense model timed the same way (the noise floor).
3. **All tasks at once**: every task's output for one image (what `predict_all` runs) against one
   task's `model(x, task=t)`, with the backbone and the heads timed apart, against the bound
   ``(L_shared + 27 · L_routed) / L`` blocks of work (+ every head once).
4. **GPU** (``--device cuda``): the same tables in bf16, plus training throughput (images/s) and model FLOP
   utilisation (FLOPs of forward + backward counted by `torch.utils.flop_counter.FlopCounterMode`).

The method (paired, interleaved timing; medians of within-pair ratios) is `harness.timing`; the parts
are in `speed_parts/`, the report is `speed_parts/report.py`.

    python benchmarks/speed.py                 # CPU, 2 threads, default plan (~20 min on a shared 2-core machine)
    python benchmarks/speed.py --quick         # ~2 min smoke run, written to a temporary folder
    python benchmarks/speed.py --device cuda   # GPU plan: bf16 tables, throughput and MFU (ViT-S, ViT-B)
    python benchmarks/speed.py --rerender      # rewrite results/speed.md from results/speed.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

import timm
import torch

from harness.machine import cpu_name
from harness.report import add_output_arguments, command_line, fmt_ratio, output_paths, read_result, write_result
from speed_parts.all_tasks import bench_all_tasks
from speed_parts.backbone_vs_timm import bench_backbone
from speed_parts.moe_overhead import bench_moe_block, bench_moe_model
from speed_parts.plan import Plan, cpu_throughput_smoke, default_plan
from speed_parts.report import markdown
from speed_parts.steps import make_timer
from speed_parts.throughput import bench_throughput, peak_flops

PARTS = ("backbone", "moe", "all", "throughput")


def machine_info(device: torch.device, threads: int) -> dict:
    info = {"cpu": cpu_name(), "cpus": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "timm": timm.__version__, "python": platform.python_version(), "device": device.type}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def moe_summary(r: dict) -> str:
    return ", ".join(f"E{c['experts']}k{c['top_k']}/{c['batch']} fwd {c['forward']['ratio']['median']:.3f} "
                     f"train {c['train']['ratio']['median']:.3f}" for c in r["cells"])


def control_summary(control: dict | None) -> str:
    return (f"A/A fwd {control['forward']['ratio']['median']:.3f} train {control['train']['ratio']['median']:.3f}; "
            if control else "")


def run(plan: Plan, parts: set[str], peak_tflops: float | None) -> dict:
    device = torch.device(plan.device)
    timer = make_timer(device, plan.inner, plan.warmup)
    started = time.perf_counter()
    result = {"command": command_line(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info(device, torch.get_num_threads()), "load_start": os.getloadavg()[0],
              "plan": asdict(plan), "backbone": [], "moe_block": [], "moe_model": [], "all_tasks": [],
              "throughput": [], "peak": None}

    def log(text: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {text}", flush=True)

    if "backbone" in parts:
        for precision in plan.precisions:
            for size in plan.sizes:
                r = bench_backbone(plan, timer, size, precision)
                result["backbone"].append(r)
                log(f"backbone {size} {precision}: whole fwd {fmt_ratio(r['whole']['forward']['ratio'])}, "
                    f"train {fmt_ratio(r['whole']['train']['ratio'])}; implied fwd {r['implied']['forward']:.4f}, "
                    f"train {r['implied']['train']:.4f}")
    if "moe" in parts:
        for precision in plan.precisions:
            for size in plan.sizes:
                full = (size, precision) in plan.block_full_cells
                r = bench_moe_block(plan, timer, size, precision, plan.block_grid if full else plan.block_subset,
                                    full)
                result["moe_block"].append(r)
                log(f"MoE block {size} {precision}: {control_summary(r['control'])}{moe_summary(r)}")
        threads = torch.get_num_threads()
        for size, precision in plan.block_one_thread_cells:
            torch.set_num_threads(1)
            try:
                r = bench_moe_block(plan, timer, size, precision, plan.block_one_thread_grid, True)
            finally:
                torch.set_num_threads(threads)
            r["threads"] = 1
            result["moe_block"].append(r)
            log(f"MoE block {size} {precision}, 1 thread: {control_summary(r['control'])}{moe_summary(r)}")
        for size, precision in plan.model_cells:
            grid = plan.model_grid if (size, precision) in plan.model_full_cells else plan.model_subset
            r = bench_moe_model(plan, timer, size, precision, grid, (size, precision) in plan.model_control_cells)
            result["moe_model"].append(r)
            log(f"MoE model {size} {precision}: {control_summary(r.get('control'))}" + ", ".join(
                f"E{c['experts']}k{c['top_k']}/{c['placement']}/{c['batch']} fwd {c['forward']['ratio']['median']:.3f} "
                f"train {c['train']['ratio']['median']:.3f}" for c in r["cells"]))
    if "all" in parts:
        for size, precision in plan.all_cells:
            r = bench_all_tasks(plan, timer, size, precision)
            result["all_tasks"].append(r)
            log(f"all tasks {size} {precision}: backbone {r['relative']['all_backbone']:.2f} (bound "
                f"{r['bound_blocks']:.2f}), whole {r['whole']['ratio']['median']:.2f} (bound {r['full_bound']:.2f}), "
                f"heads {100 * r['heads_share_all']:.0f} % of all")
    if "throughput" in parts and plan.throughput:
        peak, peak_text = peak_flops(device, peak_tflops)
        result["peak"] = peak_text
        result["throughput"] = bench_throughput(plan, timer, peak)
        for r in result["throughput"]:
            log(f"throughput {r['backbone']} {r['variant']}: {r['images_per_s']:.0f} img/s, "
                f"{r['tflops_per_s']:.1f} TFLOP/s")
    result["pairs"] = timer.record()
    result["load_end"] = os.getloadavg()[0]
    result["wall_s"] = time.perf_counter() - started
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="a ~2 min smoke run: fewer cells and rounds")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--throughput", action="store_true",
                        help="run part 4 (throughput/MFU) also on CPU (tiny batch; to test the code path)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="accelerator bf16 peak, for MFU")
    parser.add_argument("--interpretation", type=Path, default=None,
                        help="a markdown file whose text becomes the report's interpretation section")
    add_output_arguments(parser, "speed")
    args = parser.parse_args(argv)

    md_path, json_path = output_paths(args)
    if args.rerender:
        result = read_result(json_path)
    else:
        torch.set_num_threads(args.threads)
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        plan = default_plan(args.device, args.quick)
        if args.throughput and args.device == "cpu":
            cpu_throughput_smoke(plan)
        result = run(plan, set(args.parts), args.peak_tflops)
    if args.interpretation is not None:
        result["interpretation"] = args.interpretation.read_text().strip()
    report = markdown(result)
    print(report)
    write_result(md_path, json_path, report, result)


if __name__ == "__main__":
    main()
