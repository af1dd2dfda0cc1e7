"""The training data pipeline on synthetic FMC roots of 512-px PNGs: memory, step time, throughput.

(a) Peak RSS of the training process at its first step, for roots of different sizes, read lazily
    (today's path) and, for the smallest root, decoded up front (the old path), each in a fresh
    subprocess. A 54-image root gives the model's own footprint; the growth between roots gives
    the cost per 1,000 images.
(b) Step time of one model with 512-px PNG sources through 0 workers, 2 workers and the resize
    cache, each against in-memory pre-resized sources, paired and interleaved in one run
    (`harness.timing.PairedTimer`: the median of within-pair ratios).
(c) Decode + resize + augment + collate throughput of one worker at 224, 256 and 512 px, from PNG
    and from the cache, and from it the workers a ViT-B bf16 run on one H100 needs.

    m2dino data synth ROOT --per-task N --size 512 --splits train     # a root of 27 N images
    python benchmarks/data_pipeline.py --roots R54 R1k R4k --eager-root R1k
    python benchmarks/data_pipeline.py --rerender
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from harness.machine import cpu_name
from harness.report import add_output_arguments, command_line, output_paths, read_result, write_result
from harness.timing import PairedTimer

# ViT-B/16 at 224 px, bf16, one H100: timm's measured training throughput of vit_base_patch16_224 on an
# RTX 3090 with AMP (390.9 samples/s, results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv in
# huggingface/pytorch-image-models) scaled by the dense 16-bit tensor-core peak ratio H100 SXM / RTX 3090
# (989 / 71 TFLOPS = 13.9): an upper bound, reached only if the H100 ran at the 3090's utilisation; half of
# it as the lower bound. M2DINO's ViT-B adds 5 tokens to 196 and task-routed MoE at dense cost.
RTX3090_VITB_SAMPLES_S = 390.86
H100_OVER_3090 = 989 / 71
H100_RANGE = (0.5 * RTX3090_VITB_SAMPLES_S * H100_OVER_3090, RTX3090_VITB_SAMPLES_S * H100_OVER_3090)


# ----------------------------------------------------------------------------------- (a) memory
def rss_child(root: str, eager: bool) -> None:
    """Runs in a subprocess: build the model, read the root, train until step 1, print the peak RSS."""
    torch.set_num_threads(1)
    from m2dino import M2DINO, M2DINOConfig
    from m2dino.data.loading import LoaderConfig
    from m2dino.training import TrainConfig, Trainer
    from m2dino.training.data_sources import load_training_data

    data = load_training_data(root, image_size=64)
    if eager:  # the old path: every image decoded before step 1
        data.train = {t: s.materialize() for t, s in data.train.items()}
        data.val = {t: s.materialize() for t, s in data.val.items()}
    model = M2DINO(M2DINOConfig(backbone="mini", tasks=list(data.train), image_size=64))
    images = len({e.source for s in data.train.values() for e in getattr(s, "items", s)})

    def first_step(trainer, step):
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"peak_rss_mb": peak_mb, "train_images": images,
                          "train_samples": sum(len(s) for s in data.train.values())}), flush=True)
        os._exit(0)  # measured: the rest of the run is of no interest

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(output_dir=out, steps=2, batch_size=16, eval_every=1000)
        Trainer(model, data.train, data.val, config, step_callback=first_step, progress=False,
                loading=LoaderConfig(num_workers=0)).train()


def measure_rss(root: Path, eager: bool) -> dict:
    command = [sys.executable, __file__, "--rss-child", str(root)] + (["--eager"] if eager else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"root": str(root), "mode": "eager" if eager else "lazy", **result}


# ------------------------------------------------------------------------------- (b) step time
def step_times(root: Path, backbone: str, image_size: int, batch_size: int, rounds: int, inner: int,
               cache_dir: Path) -> dict:
    from m2dino import M2DINO, M2DINOConfig
    from m2dino.data import read_fmc
    from m2dino.data.cache import ResizeCache
    from m2dino.data.loading import LoaderConfig, build_train_loader
    from m2dino.data.sampling import TaskSampler

    lazy = read_fmc(root, lazy=True).by_task()
    cache = ResizeCache(cache_dir)
    size = (image_size, image_size)
    # In-memory, pre-resized: what a small dataset that fits in RAM costs (the reference).
    resident = {t: [cache.load(e, size)[0] for e in items.items] for t, items in lazy.items()}
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone=backbone, tasks=list(lazy), image_size=image_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def stepper(samples, config: LoaderConfig):
        sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size, seed=0)
        loader = build_train_loader(samples, sampler, image_size, config=config)

        def batches():
            while True:
                yield from loader

        stream = batches()

        def step() -> None:
            batch = next(stream)
            output = model(batch["pixel_values"], task=batch["task"])
            model.loss(output, batch["targets"]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    reference = stepper(resident, LoaderConfig(num_workers=0))
    variants = {"PNG, 0 workers": stepper(lazy, LoaderConfig(num_workers=0)),
                "PNG, 2 workers": stepper(lazy, LoaderConfig(num_workers=2)),
                "cache, 0 workers": stepper(lazy, LoaderConfig(num_workers=0, cache_dir=str(cache_dir))),
                "in-memory (A/A control)": stepper(resident, LoaderConfig(num_workers=0))}
    timer = PairedTimer(inner=inner, warmup=2)
    compared = timer.compare(reference, variants, rounds)
    return {"backbone": backbone, "image_size": image_size, "batch_size": batch_size, "rounds": rounds,
            "inner": inner, "reference_step_s": float(np.median([v for r in compared.values()
                                                                 for v in r["reference_s"]])),
            "variants": compared, "timer": timer.record()}


# ------------------------------------------------------------------------------ (c) throughput
def throughput(root: Path, sizes: list[int], samples_per_size: int, cache_dir: Path) -> list[dict]:
    from m2dino.data import read_fmc
    from m2dino.data.cache import ResizeCache
    from m2dino.data.loading import TrainDataset
    from m2dino.data.torch_dataset import Collate, SampleKey

    lazy = read_fmc(root, lazy=True).by_task()
    keys = [SampleKey(t, i, 1000 + i) for t, items in lazy.items() for i in range(len(items))]
    keys = [keys[i] for i in np.random.default_rng(0).permutation(len(keys))[:samples_per_size]]
    collate, rows = Collate(), []
    for size in sizes:
        for source in ("PNG", "cache"):
            cache = ResizeCache(cache_dir) if source == "cache" else None
            dataset = TrainDataset(lazy, size, train=True, cache=cache)
            if cache is not None:  # warm it first: this measures reading, not building
                for key in keys:
                    cache.load(dataset.samples[key.task].entry(key.index), (size, size))
            start = time.perf_counter()
            for first in range(0, len(keys), 16):  # batches of one task are what a worker collates
                chunk = [dataset[k] for k in keys[first:first + 16]]
                by_task: dict[str, list] = {}
                for item in chunk:
                    by_task.setdefault(item[0].task, []).append(item)
                for items in by_task.values():
                    collate(items)
            seconds = time.perf_counter() - start
            rate = len(keys) / seconds
            rows.append({"size": size, "source": source, "samples_per_s": rate,
                         "workers_for_h100": [H100_RANGE[0] / rate, H100_RANGE[1] / rate]})
    return rows


# ---------------------------------------------------------------------------------- report
def render(result: dict) -> str:
    lines = ["# Data pipeline: memory, step time and throughput on large roots", "",
             f"`{result['command']}`", "",
             f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores visible, shared with other "
             f"sessions), Python {result['machine']['python']}, torch {result['machine']['torch']}. Sources: "
             "synthetic FMC roots of 512×512 PNGs (`m2dino.data.synthetic`, the 27 benchmark tasks).", ""]
    lines += ["## (a) Peak RSS at the first training step", "",
              "Model `mini` at 64 px, batch 16, 0 workers (the training process alone), each run in a fresh process.",
              "", "| root | mode | training images | peak RSS (MB) |", "|---|---|---|---|"]
    for row in result["rss"]:
        lines.append(f"| {Path(row['root']).parent.name} | {row['mode']} | {row['train_images']} | "
                     f"{row['peak_rss_mb']:.0f} |")
    slope = result.get("rss_per_1000")
    if slope:
        lines += ["", f"Lazy growth: **{slope['lazy_mb']:.1f} MB per 1,000 images** above the model's own "
                      f"footprint (between {slope['between'][0]} and {slope['between'][1]} images; target ≤ 100)."]
        if slope.get("eager_mb") is not None:
            lines.append(f"Decoded up front (the old path): {slope['eager_mb']:.0f} MB per 1,000 images.")
    lines += ["", "## (b) Step time with 512-px PNG sources against in-memory pre-resized ones", ""]
    for block in result["steps"]:
        lines += [f"`{block['backbone']}` at {block['image_size']} px, batch {block['batch_size']}: reference "
                  f"(in-memory) step {1000 * block['reference_step_s']:.1f} ms; {block['rounds']} rounds of "
                  f"{block['inner']} steps per timed sample.", "",
                  "| variant | step time / in-memory (median, range) | target |", "|---|---|---|"]
        for name, r in block["variants"].items():
            target = "≤ 1.05" if name in ("PNG, 2 workers", "cache, 0 workers") else ""
            lines.append(f"| {name} | {r['ratio']['median']:.3f} ({r['ratio']['min']:.2f}–{r['ratio']['max']:.2f}) "
                         f"| {target} |")
        t = block["timer"]
        lines += ["", f"{t['pairs']} pairs, {t['rerun']} re-run for interference > {t['limit']:.0%}, "
                      f"{t['kept_disturbed']} kept disturbed.", ""]
    lines += ["## (c) One worker's throughput (decode + resize + augment + collate)", "",
              f"Assumed ViT-B/16 bf16 training rate on one H100: {H100_RANGE[0]:.0f}–{H100_RANGE[1]:.0f} images/s "
              f"(timm's measured {RTX3090_VITB_SAMPLES_S} samples/s on an RTX 3090 with AMP, "
              "`results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv` in huggingface/pytorch-image-models, × "
              f"the dense 16-bit tensor peak ratio H100 SXM/RTX 3090 989/71 = {H100_OVER_3090:.1f}, and half of that).",
              "", "| size | source | images/s per worker | workers to feed one H100 |", "|---|---|---|---|"]
    for row in result["throughput"]:
        low, high = row["workers_for_h100"]
        lines.append(f"| {row['size']} | {row['source']} | {row['samples_per_s']:.0f} | "
                     f"{int(np.ceil(low))}–{int(np.ceil(high))} |")
    lines += ["", "## What this run did not measure, and why", ""] + [f"- {n}" for n in result["not_measured"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roots", nargs="+", type=Path, help="FMC train roots, smallest first (the first one: "
                                                              "the model's footprint)")
    parser.add_argument("--eager-root", type=Path, default=None, help="also measure this root decoded up front")
    parser.add_argument("--step-root", type=Path, default=None, help="root for (b) and (c) (default: the second)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--inner", type=int, default=4)
    parser.add_argument("--vits", action="store_true", help="also time ViT-S at 224 px in (b)")
    parser.add_argument("--throughput-samples", type=int, default=200)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--eager", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--note", action="append", default=[], help="a line for 'what was not measured'")
    add_output_arguments(parser, "data_pipeline")
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.eager)
        return
    md_path, json_path = output_paths(args)
    if args.rerender:
        write_result(md_path, json_path, render(read_result(json_path)), read_result(json_path))
        return
    torch.set_num_threads(1)
    rss = [measure_rss(root, eager=False) for root in args.roots]
    if args.eager_root:
        rss.append(measure_rss(args.eager_root, eager=True))
    lazy = [r for r in rss if r["mode"] == "lazy"]
    slope = None
    if len(lazy) >= 2:
        a, b = lazy[-2], lazy[-1]
        per = (b["peak_rss_mb"] - a["peak_rss_mb"]) / ((b["train_images"] - a["train_images"]) / 1000)
        eager = next((r for r in rss if r["mode"] == "eager"), None)
        base = lazy[0]
        slope = {"lazy_mb": per, "between": [a["train_images"], b["train_images"]],
                 "eager_mb": None if eager is None or eager["train_images"] <= base["train_images"]
                 else (eager["peak_rss_mb"] - base["peak_rss_mb"]) / ((eager["train_images"] - base["train_images"]) / 1000)}
    step_root = args.step_root or args.roots[min(1, len(args.roots) - 1)]
    with tempfile.TemporaryDirectory() as cache_dir:
        steps = [step_times(step_root, "mini", 64, 16, args.rounds, args.inner, Path(cache_dir) / "64")]
        if args.vits:
            steps.append(step_times(step_root, "S", 224, 8, max(2, args.rounds // 4), 1, Path(cache_dir) / "224"))
        rates = throughput(step_root, [224, 256, 512], args.throughput_samples, Path(cache_dir) / "tp")
    result = {"command": command_line(),
              "machine": {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                          "torch": torch.__version__},
              "rss": rss, "rss_per_1000": slope, "steps": steps, "throughput": rates,
              "h100_assumed_images_per_s": list(H100_RANGE), "not_measured": args.note}
    write_result(md_path, json_path, render(result), result)
    print(render(result))


if __name__ == "__main__":
    main()
