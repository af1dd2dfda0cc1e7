"""Feeding an accelerator (issue 25): is the model waiting on the data pipeline, and what does each
part of the step cost? Ratios measured in one run, on one device (``--device``), each part paired
and interleaved (`harness.timing.PairedTimer`) where it compares two ways of doing the same work:

- ``decode``: samples/s of one worker reading and resizing from PNG and from the sharded cache (224, 512 px);
- ``augment``: augmentation img/s, the device path (batched torch) against the worker path (numpy/PIL);
- ``policies``: the device path's cost per augmentation policy (default, strength 2, trivial, ultrasound);
- ``step``: bf16 against fp32 and compiled against eager, one training step (``mini``/64; ``S``/224 on a GPU);
- ``loader``: the training step with the real loader against the same step on batches already on the
  device (target ≤ 1.05 with ≤ 4 workers at ``mini``/64 and ≤ 2 at ``S``/224);
- ``moe``: the MoE step against dense (target ≤ 1.10 at batch 8 and 128), and the grouped dispatch
  against the per-expert loop it replaced;
- ``small_data``: HC18 at 128 px, 100 steps, whole process: today's default against the eager path of
  commit 55763b7 (wall and CPU time; needs a git checkout and HC18);
- ``compile_accuracy``: HC18 at 128 px, 1,500 steps, seeds 0 and 1, eager against ``--compile``: the
  final model's validation scores (does compiling change what is learnt?; needs HC18).

    python benchmarks/feed.py                                  # every part on the CPU, ~30-40 min
    python benchmarks/feed.py --parts loader moe --device cuda  # on a GPU: writes feed_cuda.{md,json}
    python benchmarks/feed.py --quick                          # a smoke run of tiny counts, in a temporary folder
    python benchmarks/feed.py --rerender                       # the markdown again from the json

Writes benchmarks/results/feed.{md,json} (``feed_cuda.*`` on a GPU). Parts an earlier run on the same
device recorded there are kept (each with its own command), so the benchmark can run in parts;
``--fresh`` starts over. The interpretation between the
``interpretation`` markers is written by hand and kept when the report is rendered again.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from feed_parts.report import write_report  # noqa: E402
from harness.machine import cpu_name  # noqa: E402
from harness.report import command_line, portable_path  # noqa: E402

PARTS = ("decode", "augment", "policies", "step", "loader", "moe", "small_data", "compile_accuracy")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the loader, step and moe parts run there)")
    p.add_argument("--hc18", default=str(REPO.parent / "shared" / "data" / "hc18"),
                   help="HC18 in its published layout, for the small_data part")
    p.add_argument("--quick", action="store_true", help="tiny counts; writes to a temporary folder unless "
                                                        "--results-dir is given")
    p.add_argument("--results-dir", default=None, help="default benchmarks/results")
    p.add_argument("--work-dir", default=None, help="where the synthetic root and caches go (default: temporary)")
    p.add_argument("--rerender", action="store_true", help="render the markdown again from the json")
    p.add_argument("--fresh", action="store_true", help="drop the parts an earlier run recorded in the json")
    args = p.parse_args(argv)
    if args.results_dir is None:
        default = REPO / "benchmarks" / "results"
        args.results_dir = tempfile.mkdtemp(prefix="feed-quick-") if args.quick else str(default)
    args.results_dir = Path(args.results_dir)
    needs_hc18 = sorted({"small_data", "compile_accuracy"} & set(args.parts))
    if needs_hc18 and not args.rerender and not (Path(args.hc18) / "training_set").is_dir():
        p.error(f"--hc18 {args.hc18}: no training_set/ folder (HC18's published layout); pass --hc18 PATH or "
                f"leave {' and '.join(needs_hc18)} out of --parts")
    return args


def run_parts(args, work: Path) -> dict:
    """Each chosen part's rows, with the seconds it took."""
    import torch

    torch.set_num_threads(1)  # one training thread, as a worker process has; a part that varies it says so
    from feed_parts.decode import make_root

    quick = args.quick
    root = make_root(work / "root", per_task=2 if quick else 8, size=256 if quick else 512)
    results = {}
    for part in args.parts:
        started = time.time()
        print(f"part {part} ...", flush=True)
        if part == "decode":
            from feed_parts.decode import decode_rates

            rows = decode_rates(root, work / "cache", sizes=(224,) if quick else (224, 512),
                                samples=16 if quick else 200, rounds=1 if quick else 3)
        elif part == "augment":
            from feed_parts.augment import augment_rates

            rows = augment_rates(sizes=(64,) if quick else (128, 224), threads=(1,) if quick else (1, 2),
                                 count=8 if quick else 32, batch_size=4 if quick else 16, rounds=1 if quick else 5)
        elif part == "policies":
            from feed_parts.augment_policies import policy_rates

            rows = policy_rates(size=64 if quick else 128, count=8 if quick else 32, batch_size=4 if quick else 16,
                                rounds=1 if quick else 5)
        elif part == "step":
            from feed_parts.step import step_ratios

            # ``S``/224 only on a GPU: inductor's first compilation of it takes most of an hour on 2 CPU cores.
            cpu_shapes = (("mini", 64, 8),) if args.device == "cpu" else (("mini", 64, 8), ("S", 224, 4))
            rows = step_ratios(args.device, shapes=(("test", 32, 2),) if quick else cpu_shapes,
                               rounds=1 if quick else 5, warmup=1 if quick else 3)
        elif part == "loader":
            from feed_parts.loader import loader_ratios

            settings = (("test", 32, 4, (0,)),) if quick else (("mini", 64, 16, (0, 2, 4)), ("S", 224, 8, (0, 2)))
            rows = loader_ratios(root, settings, rounds=1 if quick else 5, inner=1 if quick else 4,
                                 prepared=4 if quick else 64, device=args.device)
        elif part == "moe":
            from feed_parts.moe import moe_ratios

            rows = moe_ratios((2,) if quick else (8, 128), args.device, backbone="test" if quick else "mini",
                              image_sizes={2: 32} if quick else {8: 224, 128: 128}, rounds=1 if quick else 3)
        elif part == "small_data":
            from feed_parts.small_data import small_data_paired, summarise

            pairs = small_data_paired(Path(args.hc18), runs=1 if quick else 3, steps=5 if quick else 100)
            rows = [{"summary": summarise(pairs), "pairs": pairs}]
        else:
            from feed_parts.compile_accuracy import compile_accuracy, summarise

            runs = compile_accuracy(Path(args.hc18), seeds=(0,) if quick else (0, 1), steps=4 if quick else 1500)
            rows = [{"summary": summarise(runs), "runs": runs}]
        results[part] = {"rows": rows, "seconds": round(time.time() - started, 1)}
        print(f"part {part}: {results[part]['seconds']:.0f} s", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    name = "feed_cuda" if args.device.startswith("cuda") else "feed"
    json_path = args.results_dir / f"{name}.json"
    if args.rerender:
        if not json_path.is_file():
            raise SystemExit(f"--rerender: {json_path} not found; run the benchmark first")
        print(write_report(json.loads(json_path.read_text()), args.results_dir, name))
        return
    import torch

    with tempfile.TemporaryDirectory(prefix="feed-") as temporary:
        work = Path(args.work_dir or temporary)
        results = run_parts(args, work)
    device = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
              else f"{cpu_name()} (CPU)")
    command = command_line(["benchmarks/feed.py", *argv]).strip()
    for result in results.values():
        result["command"] = command
    # Parts measured by an earlier run on the same device stay (the benchmark runs in parts); --fresh drops them.
    earlier = json.loads(json_path.read_text()) if json_path.is_file() and not args.fresh else {}
    kept = {part: result for part, result in earlier.get("parts", {}).items()
            if part not in results and earlier.get("device") == device}
    record = {"command": command, "device": device,
              "machine": {"platform": platform.platform(), "torch": torch.__version__,
                          "cpus": len(os.sched_getaffinity(0))},
              "quick": args.quick, "hc18": portable_path(Path(args.hc18)),
              "parts": {part: (results | kept)[part] for part in PARTS if part in results | kept}}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    print(write_report(record, args.results_dir, name))
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
