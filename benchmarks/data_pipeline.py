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
from harness.report import (
    add_output_arguments,
    command_line,
    output_paths,
    portable_path,
    read_result,
    write_result,
)
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
    from m2dino.data import LoaderConfig
    from m2dino.training import TrainConfig, Trainer, load_training_data

    before = current_rss_mb()
    data = load_training_data(root, image_size=64)
    if eager:  # the old path: every image decoded before step 1
        data.train = {t: s.materialize() for t, s in data.train.items()}
        data.val = {t: s.materialize() for t, s in data.val.items()}
    data_mb = current_rss_mb() - before  # what holding the data costs, measured where it is resolvable
    model = M2DINO(M2DINOConfig(backbone="mini", tasks=list(data.train), image_size=64))
    images = len({e.source for s in data.train.values() for e in getattr(s, "items", s)})

    def first_step(trainer, step):
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"peak_rss_mb": peak_mb, "data_rss_mb": data_mb, "train_images": images,
                          "train_samples": sum(len(s) for s in data.train.values())}), flush=True)
        os._exit(0)  # measured: the rest of the run is of no interest

    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(output_dir=out, steps=2, batch_size=16, eval_every=1000)
        Trainer(model, data.train, data.val, config, step_callback=first_step, progress=False,
                loading=LoaderConfig(num_workers=0)).train()


def rss_slope(rss: list[dict]) -> dict | None:
    """Data RSS per 1,000 training images: lazily between the two largest roots; eagerly against the smallest."""
    lazy = [r for r in rss if r["mode"] == "lazy"]
    if len(lazy) < 2:
        return None
    a, b, base = lazy[-2], lazy[-1], lazy[0]
    eager = next((r for r in rss if r["mode"] == "eager"), None)
    def per(x: dict, y: dict) -> float:
        return (y["data_rss_mb"] - x["data_rss_mb"]) / ((y["train_images"] - x["train_images"]) / 1000)

    return {"lazy_mb": per(a, b), "between": [a["train_images"], b["train_images"]],
            "eager_mb": per(base, eager) if eager and eager["train_images"] > base["train_images"] else None}


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_rss(root: Path, eager: bool) -> dict:
    command = [sys.executable, __file__, "--rss-child", str(root)] + (["--eager"] if eager else [])
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=Path(__file__).parent)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"root": portable_path(root), "mode": "eager" if eager else "lazy", **result}


# ------------------------------------------------------------------------------- (b) step time
def step_times(root: Path, backbone: str, image_size: int, batch_size: int, rounds: int, inner: int,
               cache_dir: Path) -> dict:
    from m2dino import M2DINO, M2DINOConfig
    from m2dino.data import LoaderConfig, ResizeCache, TaskSampler, build_train_loader, read_fmc

    lazy = read_fmc(root, lazy=True).by_task()
    size = (image_size, image_size)
    cache = ResizeCache(cache_dir, size, "letterbox")
    # In-memory, pre-resized: what a small dataset that fits in RAM costs (the reference).
    resident = {t: [cache.load(e)[0] for e in items.items] for t, items in lazy.items()}
    torch.manual_seed(0)
    model = M2DINO(M2DINOConfig(backbone=backbone, tasks=list(lazy), image_size=image_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def stepper(samples, config: LoaderConfig):
        sampler = TaskSampler({t: len(s) for t, s in samples.items()}, batch_size, seed=0)
        loader = build_train_loader(samples, sampler, model.config.preprocessing, config=config)

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

    # The worker path and no automatic memory cache: what this section measured when it was committed
    # (benchmarks/feed.py measures today's defaults).
    def loading(workers: int, cache: str | None = None) -> LoaderConfig:
        return LoaderConfig(num_workers=workers, cache_dir=cache, memory_cache_bytes=0, augment_on="worker")

    reference = stepper(resident, loading(0))
    variants = {"PNG, 0 workers": stepper(lazy, loading(0)),
                "PNG, 2 workers": stepper(lazy, loading(2)),
                "cache, 0 workers": stepper(lazy, loading(0, str(cache_dir))),
                "in-memory (A/A control)": stepper(resident, loading(0))}
    timer = PairedTimer(inner=inner, warmup=2)
    compared = timer.compare(reference, variants, rounds)
    return {"backbone": backbone, "image_size": image_size, "batch_size": batch_size, "rounds": rounds,
            "inner": inner, "reference_step_s": float(np.median([v for r in compared.values()
                                                                 for v in r["reference_s"]])),
            "variants": compared, "timer": timer.record()}


# ------------------------------------------------------------------------------ (c) throughput
def throughput(root: Path, sizes: list[int], samples_per_size: int, cache_dir: Path) -> list[dict]:
    from m2dino.data import Collate, ResizeCache, SampleKey, TrainDataset, read_fmc
    from m2dino.image import Preprocessing

    lazy = read_fmc(root, lazy=True).by_task()
    keys = [SampleKey(t, i, 1000 + i) for t, items in lazy.items() for i in range(len(items))]
    keys = [keys[i] for i in np.random.default_rng(0).permutation(len(keys))[:samples_per_size]]
    rows = []
    for size in sizes:
        for source in ("PNG", "cache", "cache, no augmentation"):
            on_disk = source.startswith("cache")
            cache = ResizeCache(cache_dir / f"{size}", (size, size), "letterbox") if on_disk else None
            dataset = TrainDataset(lazy, Preprocessing(size), train=source != "cache, no augmentation",
                                   cache=cache, augment_on="worker")
            collate = Collate(dataset.preprocessing)
            if cache is not None:  # build it first: this measures reading, not building
                cache.build([dataset.samples[key.task].entry(key.index) for key in keys], progress=False)
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
    by_command: dict[str, list[str]] = {}
    for section, command in sorted((result.get("section_commands") or {"(a), (b), (c)": result["command"]}).items()):
        by_command.setdefault(command, []).append(section)
    lines = ["# Data pipeline: memory, step time and throughput on large roots", ""]
    lines += [f"{', '.join(sections)}: `{command}`\n" for command, sections in by_command.items()]
    lines += [
             (f"Machine: {result['machine']['cpu']} ({result['machine']['cores']} cores visible; "
             "the notes below say how "
             f"busy), Python {result['machine']['python']}, torch {result['machine']['torch']}. Sources: "
             "synthetic FMC roots of 512×512 PNGs (`m2dino.data.synthetic`, the 27 benchmark tasks)."), ""]
    lines += ["## (a) Peak RSS at the first training step", "",
              "Model `mini` at 64 px, batch 16, 0 workers (the training process alone), each run in a fresh process.",
              "`data` is the RSS added by reading the root (train and validation), measured right after it.",
              "", "| root | mode | training images | data (MB) | peak RSS (MB) |", "|---|---|---|---|---|"]
    for row in result["rss"]:
        data = f"{row['data_rss_mb']:.1f}" if "data_rss_mb" in row else "n/a"
        lines.append(f"| {Path(row['root']).parent.name} | {row['mode']} | {row['train_images']} | {data} | "
                     f"{row['peak_rss_mb']:.0f} |")
    slope = result.get("rss_per_1000")
    if slope:
        lines += ["", (f"Lazy growth: **{slope['lazy_mb']:.1f} MB per 1,000 images** of data RSS (between "
                      f"{slope['between'][0]} and {slope['between'][1]} training images; target ≤ 100 above the "
                      "model's own footprint).")]
        if slope.get("eager_mb") is not None:
            lines.append(f"Decoded up front (the old path): {slope['eager_mb']:.0f} MB per 1,000 images.")
    lines += ["", "## (b) Step time with 512-px PNG sources against in-memory pre-resized ones", ""]
    for block in result["steps"]:
        lines += [(f"`{block['backbone']}` at {block['image_size']} px, batch {block['batch_size']}: reference "
                  f"(in-memory) step {1000 * block['reference_step_s']:.1f} ms; {block['rounds']} rounds of "
                  f"{block['inner']} steps per timed sample."), "",
                  "| variant | step time / in-memory (median, range) | target |", "|---|---|---|"]
        for name, r in block["variants"].items():
            target = "≤ 1.05" if name in ("PNG, 2 workers", "cache, 0 workers") else ""
            lines.append(f"| {name} | {r['ratio']['median']:.3f} ({r['ratio']['min']:.2f}–{r['ratio']['max']:.2f}) "
                         f"| {target} |")
        t = block["timer"]
        lines += ["", (f"{t['pairs']} pairs, {t['rerun']} re-run for interference > {t['limit']:.0%}, "
                      f"{t['kept_disturbed']} kept disturbed."), ""]
    lines += ["## (c) One worker's throughput (decode + resize + augment + collate)", "",
              (f"Assumed ViT-B/16 bf16 training rate on one H100: {H100_RANGE[0]:.0f}–{H100_RANGE[1]:.0f} images/s "
              f"(timm's measured {RTX3090_VITB_SAMPLES_S} samples/s on an RTX 3090 with AMP, "
              "`results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv` in huggingface/pytorch-image-models, × "
              f"the dense 16-bit tensor peak ratio H100 SXM/RTX 3090 989/71 = {H100_OVER_3090:.1f}, "
              "and half of that)."),
              "", "| size | source | images/s per worker | workers to feed one H100 |", "|---|---|---|---|"]
    for row in result["throughput"]:
        low, high = row["workers_for_h100"]
        lines.append(f"| {row['size']} | {row['source']} | {row['samples_per_s']:.0f} | "
                     f"{int(np.ceil(low))}–{int(np.ceil(high))} |")
    lines += ["", "## Reading", ""] + reading(result)
    lines += ["", "## What this run did not measure, and why", ""] + [f"- {n}" for n in result["not_measured"]]
    return "\n".join(lines) + "\n"


def reading(result: dict) -> list[str]:
    """What the numbers say, computed from them (so a rerun keeps the text true)."""
    out = []
    lazy = [r for r in result["rss"] if r["mode"] == "lazy"]
    slope = result.get("rss_per_1000") or {}
    if len(lazy) >= 2 and slope:
        spread = max(r["peak_rss_mb"] for r in lazy) - min(r["peak_rss_mb"] for r in lazy)
        largest = lazy[-1]
        size = (f"the largest root measured adds {largest['data_rss_mb']:.0f} MB" if largest["train_images"] >= 10_000
                else f"a 16k-image root would add about {16 * slope['lazy_mb']:.0f} MB (extrapolated)")
        out.append(f"- Memory: read lazily, the peak RSS at step 1 stays within {spread:.0f} MB from "
                   f"{lazy[0]['train_images']} to {largest['train_images']} training images (the peak is set by "
                   "imports, the model and the first step); the index itself costs "
                   f"{slope['lazy_mb']:.1f} MB per 1,000 images, so {size}.")
        if slope.get("eager_mb"):
            out.append(f"- Decoding everything up front cost {slope['eager_mb']:.0f} MB per 1,000 images: "
                       f"~{16 * slope['eager_mb'] / 1024:.0f} GB for 16k, per process.")
    for block in result["steps"]:
        ratio = {name: r["ratio"]["median"] for name, r in block["variants"].items()}
        control = block["variants"].get("in-memory (A/A control)", {}).get("ratio")
        noise = f"; the A/A control reads {control['median']:.2f} ({control['min']:.2f}–{control['max']:.2f})" \
            if control else ""
        if control and abs(control["median"] - 1) > 0.05:
            noise += ", so differences of that size are noise in this run"
        met = [n for n in ("PNG, 2 workers", "cache, 0 workers") if ratio.get(n, 99) <= 1.05]
        out.append(f"- Step time, `{block['backbone']}` at {block['image_size']} px "
                   f"({1000 * block['reference_step_s']:.0f} ms a step here): PNG with 0 workers ×"
                   f"{ratio['PNG, 0 workers']:.2f}, 2 workers ×{ratio['PNG, 2 workers']:.2f}, cache ×"
                   f"{ratio['cache, 0 workers']:.2f}{noise}; target ≤ 1.05 met by "
                   f"{', '.join(met) if met else 'neither'} in this run.")
    rows = {(r["size"], r["source"]): r["samples_per_s"] for r in result["throughput"]}
    sizes = [size for size in sorted({r["size"] for r in result["throughput"]})
             if (size, "cache") in rows and (size, "cache, no augmentation") in rows]
    if sizes:
        read = [1000 / rows[(z, "cache, no augmentation")] for z in sizes]
        full = [1000 / rows[(z, "cache")] for z in sizes]
        shares = [1 - r / f for r, f in zip(read, full)]
        out.append(f"- Reading a cached sample takes {' / '.join(f'{r:.1f}' for r in read)} ms at "
                   f"{' / '.join(map(str, sizes))} px, augmenting it "
                   f"{' / '.join(f'{f - r:.1f}' for r, f in zip(read, full))}"
                   f" ms more ({min(shares):.0%}–{max(shares):.0%} of a worker's time): on a GPU node the CPU "
                   "augmentations (affine warp, gamma, speckle in float64), not decoding, set the number of workers; "
                   "moving them to the GPU or to float32 is the next step.")
    return out


def main(argv: list[str] | None = None) -> None:
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
    parser.add_argument("--only", nargs="+", choices=["rss", "steps", "throughput"], default=None,
                        help="measure only these sections again, keep the others from the existing JSON")
    add_output_arguments(parser, "data_pipeline")
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.eager)
        return
    md_path, json_path = output_paths(args)
    if args.rerender:
        write_result(md_path, json_path, render(read_result(json_path)), read_result(json_path))
        return
    torch.set_num_threads(1)
    sections = set(args.only or ("rss", "steps", "throughput"))
    result = read_result(json_path) if args.only else {}
    labels = {"rss": "(a)", "steps": "(b)", "throughput": "(c)"}
    commands = result.get("section_commands") or {label: result["command"] for label in labels.values()
                                                  if "command" in result}
    step_root = args.step_root or args.roots[min(1, len(args.roots) - 1)]
    if "rss" in sections:
        rss = [measure_rss(root, eager=False) for root in args.roots]
        if args.eager_root:
            rss.append(measure_rss(args.eager_root, eager=True))
        result["rss"], result["rss_per_1000"] = rss, rss_slope(rss)
    with tempfile.TemporaryDirectory() as cache_dir:
        if "steps" in sections:
            result["steps"] = [step_times(step_root, "mini", 64, 16, args.rounds, args.inner, Path(cache_dir) / "64")]
            if args.vits:
                result["steps"].append(step_times(step_root, "S", 224, 8, max(2, args.rounds // 4), 1,
                                                  Path(cache_dir) / "224"))
        if "throughput" in sections:
            result["throughput"] = throughput(step_root, [224, 256, 512], args.throughput_samples,
                                              Path(cache_dir) / "tp")
    result["section_commands"] = {**commands, **{labels[x]: command_line() for x in sections}}
    result["command"] = command_line()
    result["machine"] = {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)),
                         "python": platform.python_version(), "torch": torch.__version__}
    result["h100_assumed_images_per_s"] = list(H100_RANGE)
    result["not_measured"] = args.note or result.get("not_measured", [])
    write_result(md_path, json_path, render(result), result)
    print(render(result))


if __name__ == "__main__":
    main()
