"""feed.md: one table per part, rendered from feed.json; the hand-written interpretation is kept."""

from __future__ import annotations

from pathlib import Path

from harness.report import interpretation_block

LOADER_TARGET, MOE_TARGET = 1.05, 1.10


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _decode(rows: list[dict]) -> list[str]:
    return _table(["size", "source", "samples/s per worker"],
                  [[r["size"], r["source"], f"{r['samples_per_s']:.0f}"] for r in rows])


def _augment(rows: list[dict]) -> list[str]:
    return _table(["task", "px", "threads", "worker path img/s", "device path img/s", "device ÷ worker (time)"],
                  [[f"`{r['task']}`", r["size"], r["threads"], f"{r['worker_path_img_s']:.0f}",
                    f"{r['device_path_img_s']:.0f}", f"{r['device_over_worker']['median']:.2f}"] for r in rows])


def _policies(rows: list[dict]) -> list[str]:
    return _table(["task", "policy", "px", "img/s", "× default (time)"],
                  [[f"`{r['task']}`", r["policy"], r["size"], f"{r['img_s']:.0f}", f"{r['over_default']:.2f}"]
                   for r in rows])


def _step(rows: list[dict]) -> list[str]:
    return _table(["backbone", "px", "batch", "variant", "step time ÷ eager fp32", "range", "variant s"],
                  [[r["backbone"], r["image_size"], r["batch_size"], r["variant"], f"{r['ratio']:.2f}",
                    f"{r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f}", f"{r['variant_seconds']:.3f}"]
                   for r in rows])


def _loader(rows: list[dict]) -> list[str]:
    return _table(["backbone", "px", "batch", "workers", "real loader ÷ prepared batches", f"≤ {LOADER_TARGET}",
                   "prepared step s"],
                  [[r["backbone"], r["size"], r["batch_size"], r["workers"], f"{r['ratio']:.2f}",
                    "yes" if r["ratio"] <= LOADER_TARGET else "**no**", f"{r['prepared_step_s']:.3f}"] for r in rows])


def _moe(rows: list[dict]) -> list[str]:
    return _table(["scope", "batch", "px", "experts/top-k", "batch of", "old ÷ dense", "new ÷ dense",
                   f"new ≤ {MOE_TARGET}", "new ÷ old"],
                  [[r["scope"], r["batch_size"], r["image_size"], f"{r['experts']}/{r['top_k']}", r["tasks"],
                    f"{r['old_vs_dense']:.2f}", f"{r['new_vs_dense']:.2f}",
                    "yes" if r["new_vs_dense"] <= MOE_TARGET else "**no**", f"{r['new_vs_old']:.2f}"] for r in rows])


def _small_data(rows: list[dict]) -> list[str]:
    summary = rows[0]["summary"]
    pairs = rows[0]["pairs"]
    lines = _table(["pair", "today wall s", "55763b7 wall s", "wall ratio", "today CPU s", "55763b7 CPU s",
                    "CPU ratio"],
                   [[p["pair"], f"{p['today']['wall_s']:.1f}", f"{p['old']['wall_s']:.1f}", f"{p['wall_ratio']:.2f}",
                     f"{p['today']['cpu_s']:.1f}", f"{p['old']['cpu_s']:.1f}", f"{p['cpu_ratio']:.2f}"]
                    for p in pairs])
    return lines + ["", f"Median over {summary['pairs']} pair(s), today ÷ 55763b7: wall {summary['wall_ratio']:.2f}, "
                        f"CPU {summary['cpu_ratio']:.2f}, peak memory {summary['max_rss_ratio']:.2f} (below 1: today "
                        "is faster / smaller)."]


def _compile_accuracy(rows: list[dict]) -> list[str]:
    runs, summary = rows[0]["runs"], rows[0]["summary"]
    tasks = list(runs[0]["eager"]["scores"])
    lines = _table(["seed", "variant", *tasks, "mean", "wall s"],
                   [[r["seed"], variant, *(f"{r[variant]['scores'][t]:.3f}" for t in tasks),
                     f"{r[variant]['mean']:.3f}", f"{r[variant]['wall_s']:.0f}"]
                    for r in runs for variant in ("eager", "compiled")])
    return lines + ["", f"{runs[0]['steps']} steps. Compiled − eager mean score, averaged over {summary['seeds']} "
                        f"seed(s): {summary['mean_difference']:+.3f}; the eager runs' seed-to-seed SD: "
                        f"{summary['eager_seed_sd']:.3f}."]


SECTIONS = {
    "decode": ("Decode: one worker, PNG vs the sharded cache", _decode),
    "augment": ("Augmentation: device path vs worker path", _augment),
    "policies": ("Augmentation policies on the device path", _policies),
    "step": ("Training step: bf16 and compile", _step),
    "loader": ("Does the model wait on the loader?", _loader),
    "moe": ("MoE step vs dense, grouped dispatch vs the per-expert loop", _moe),
    "small_data": ("Small data: HC18, 128 px, 100 steps, whole process, today vs 55763b7", _small_data),
    "compile_accuracy": ("Does --compile change what a run learns? HC18, 128 px, eager vs compiled", _compile_accuracy),
}


def render(record: dict, previous: Path | None = None) -> str:
    """The report of ``record``, keeping the interpretation written into ``previous`` (the report it replaces)."""
    lines = ["# Feeding an accelerator", "",
             f"Command: `{record['command']}`. Device: **{record['device']}**, {record['machine']['cpus']} CPU "
             f"core(s) for this process, torch {record['machine']['torch']}"
             + (" (a quick smoke run: tiny counts, read nothing into it)" if record.get("quick") else "") + ".",
             "", "## Interpretation", "", *interpretation_block(previous)]
    for part, result in record["parts"].items():
        title, table = SECTIONS[part]
        how = f"`{result['command']}`, " if result.get("command") and result["command"] != record["command"] else ""
        lines += ["", f"## {title}", "", f"_{how}{result['seconds']:.0f} s to measure._", ""] + table(result["rows"])
    return "\n".join(lines) + "\n"


def write_report(record: dict, results_dir: Path, name: str = "feed") -> str:
    path = Path(results_dir) / f"{name}.md"
    text = render(record, path)
    path.write_text(text)
    return text
