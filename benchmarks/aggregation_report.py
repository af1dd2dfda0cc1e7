"""Tables, plot and markdown of `benchmarks/aggregation.py` (from its JSON, so they can be rebuilt)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

HIGHER_IS_BETTER = {"DSC": True, "Accuracy": True, "IoU": True, "MRE": False, "MAE": False}
UNITS = {"MRE": " px", "MAE": ""}
PARADIGM_NAMES = {"task_specific": "task-specific", "grouped": "grouped", "unified": "unified"}
MARK_START, MARK_END = "<!-- interpretation -->", "<!-- /interpretation -->"
DEFAULT_INTERPRETATION = "_(to be written after looking at the numbers)_"


def headline_delta(metric: str, value: float | None, reference: float | None) -> float | None:
    """Change of the headline metric against task-specific, signed so that negative = worse."""
    if value is None or reference is None:
        return None
    return value - reference if HIGHER_IS_BETTER.get(metric, True) else reference - value


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _f(value, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100)}%"


def comparisons(study: dict) -> list[dict]:
    """One entry per task × fraction × MoE setting (main seed): each paradigm's metric and score and
    its change against task-specific."""
    seed = study["settings"]["seed"]
    table = {(r["task"], r["fraction"], r["moe"], r["paradigm"]): r for r in study["rows"] if r["seed"] == seed}
    out = []
    for task in study["settings"]["tasks"]:
        for fraction in study["settings"]["fractions"]:
            for moe in study["settings"]["moe"]:
                reference = table.get((task, fraction, moe, "task_specific"))
                if reference is None:
                    continue
                entry = {"task": task, "type": reference["type"], "group": reference["group"], "fraction": fraction,
                         "moe": moe, "metric": reference["metric"], "train_samples": reference["train_samples"]}
                for paradigm in study["settings"]["paradigms"]:
                    row = table.get((task, fraction, moe, paradigm))
                    if row is None:
                        continue
                    entry[paradigm] = {"value": row["value"], "score": row["score"], "model": row["model"]}
                    if paradigm != "task_specific":
                        entry[paradigm]["delta_value"] = headline_delta(row["metric"], row["value"], reference["value"])
                        entry[paradigm]["delta_score"] = (None if row["score"] is None or reference["score"] is None
                                                          else row["score"] - reference["score"])
                out.append(entry)
    return out


def noise(study: dict) -> dict | None:
    """Seed variance at the noise configuration: per task, scores of task-specific and unified and
    their difference over the main seed and the noise seeds."""
    seeds = [study["settings"]["seed"], *study["settings"].get("noise_seeds", [])]
    if len(seeds) < 2:
        return None
    fraction = max(study["settings"]["fractions"])
    rows = [r for r in study["rows"] if r["fraction"] == fraction and r["moe"] == "moe" and r["seed"] in seeds]
    by = {(r["task"], r["paradigm"], r["seed"]): r["score"] for r in rows}
    tasks = {}
    for task in study["settings"]["tasks"]:
        ts = [by.get((task, "task_specific", s)) for s in seeds]
        un = [by.get((task, "unified", s)) for s in seeds]
        if any(v is None for v in ts + un):
            continue
        delta = [u - t for u, t in zip(un, ts)]
        tasks[task] = {"task_specific": ts, "unified": un, "delta": delta,
                       "sd_task_specific": float(np.std(ts, ddof=1)), "sd_unified": float(np.std(un, ddof=1)),
                       "sd_delta": float(np.std(delta, ddof=1)), "mean_delta": float(np.mean(delta))}
    if not tasks:
        return None
    per_seed = [float(np.mean([t["delta"][i] for t in tasks.values()])) for i in range(len(seeds))]
    mean = {"delta": per_seed, "sd_delta": float(np.std(per_seed, ddof=1))}
    return {"fraction": fraction, "moe": "moe", "seeds": seeds, "tasks": tasks, "mean over tasks": mean}


def _constant(study: dict) -> dict[str, dict]:
    return {r["task"]: r for r in study.get("constant_baseline", [])}


def _columns(study: dict) -> list[tuple[str, str]]:
    return [(p, m) for p in study["settings"]["paradigms"] for m in study["settings"]["moe"]]


def mean_score_table(study: dict) -> str:
    seed = study["settings"]["seed"]
    columns = _columns(study)
    constant = _constant(study)
    lines = ["| data | " + " | ".join(f"{PARADIGM_NAMES[p]} {m}" for p, m in columns) + " | constant predictor |",
             "|---|" + "---:|" * (len(columns) + 1)]
    baseline = _f(_mean(constant[t]["score"] for t in study["settings"]["tasks"] if t in constant))
    for fraction in study["settings"]["fractions"]:
        cells = []
        for paradigm, moe in columns:
            scores = [r["score"] for r in study["rows"] if r["seed"] == seed and r["fraction"] == fraction
                      and r["paradigm"] == paradigm and r["moe"] == moe]
            cells.append(_f(_mean(scores)))
        lines.append(f"| {_pct(fraction)} | " + " | ".join(cells) + f" | {baseline} |")
    return "\n".join(lines)


def delta_by_type_table(study: dict, entries: list[dict]) -> str:
    others = [p for p in study["settings"]["paradigms"] if p != "task_specific"]
    columns = [(p, m) for p in others for m in study["settings"]["moe"]]
    types = list(dict.fromkeys(e["type"] for e in entries))
    lines = ["| task type (tasks) | data | " + " | ".join(f"Δ {PARADIGM_NAMES[p]} {m}" for p, m in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for kind in [*types, "all tasks"]:
        chosen = [e for e in entries if kind == "all tasks" or e["type"] == kind]
        names = sorted({e["task"] for e in chosen})
        label = f"{kind} ({len(names)})" if kind == "all tasks" else f"{kind} ({', '.join(names)})"
        for fraction in study["settings"]["fractions"]:
            cells = []
            for paradigm, moe in columns:
                values = [e[paradigm]["delta_score"] for e in chosen
                          if e["fraction"] == fraction and e["moe"] == moe and paradigm in e]
                cells.append(_f(_mean(values), sign=True))
            lines.append(f"| {label} | {_pct(fraction)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_table(study: dict, entries: list[dict]) -> str:
    others = [p for p in study["settings"]["paradigms"] if p != "task_specific"]
    constant = _constant(study)
    head = ["task", "metric", "data (train n)", "MoE", "constant", "task-specific"]
    for p in others:
        head += [PARADIGM_NAMES[p], "Δ"]
    head += ["score TS"] + [f"Δscore {PARADIGM_NAMES[p][0].upper()}" for p in others]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(head) - 4)]
    for e in entries:
        metric = e["metric"] + (" ↓" if not HIGHER_IS_BETTER.get(e["metric"], True) else "")
        digits = 1 if not HIGHER_IS_BETTER.get(e["metric"], True) else 3
        cells = [e["task"], metric, f"{_pct(e['fraction'])} ({e['train_samples']})", e["moe"],
                 _f(constant.get(e["task"], {}).get("value"), digits), _f(e["task_specific"]["value"], digits)]
        for p in others:
            cells += [_f(e.get(p, {}).get("value"), digits), _f(e.get(p, {}).get("delta_value"), digits, sign=True)]
        cells.append(_f(e["task_specific"]["score"]))
        cells += [_f(e.get(p, {}).get("delta_score"), sign=True) for p in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def noise_table(info: dict) -> str:
    seeds = ", ".join(str(s) for s in info["seeds"])
    lines = [f"Seeds {seeds}, {_pct(info['fraction'])} of the data, MoE: normalised score per seed, and its "
             "standard deviation (SD).", "",
             "| task | task-specific | SD | unified | SD | Δ unified (per seed) | SD of Δ |", "|---|---|---:|---|---:|---|---:|"]
    for task, t in info["tasks"].items():
        lines.append(f"| {task} | {' / '.join(_f(v) for v in t['task_specific'])} | {_f(t['sd_task_specific'])} | "
                     f"{' / '.join(_f(v) for v in t['unified'])} | {_f(t['sd_unified'])} | "
                     f"{' / '.join(_f(v, sign=True) for v in t['delta'])} | {_f(t['sd_delta'])} |")
    sd = _mean(t["sd_delta"] for t in info["tasks"].values())
    mean = info["mean over tasks"]
    lines.append(f"\nMean SD of a task's Δ over seeds: **{_f(sd)}**; Δ of the mean over tasks per seed: "
                 f"{' / '.join(_f(v, sign=True) for v in mean['delta'])}, SD **{_f(mean['sd_delta'])}** "
                 "(normalised score).")
    return "\n".join(lines)


def facts(study: dict, entries: list[dict], info: dict | None) -> str:
    """Counted statements to support the interpretation (generated, not judged)."""
    lines = []
    sds = {task: t["sd_delta"] for task, t in info["tasks"].items()} if info else {}
    for paradigm in [p for p in study["settings"]["paradigms"] if p != "task_specific"]:
        cells = [(e["task"], e[paradigm]["delta_score"]) for e in entries
                 if paradigm in e and e[paradigm]["delta_score"] is not None]
        if not cells:
            continue
        deltas = [d for _, d in cells]
        text = (f"- {PARADIGM_NAMES[paradigm]} vs task-specific: mean Δscore {_f(_mean(deltas), sign=True)}; "
                f"worse (negative transfer) in {sum(d < 0 for d in deltas)} of {len(deltas)} task × data × MoE cells")
        if sds:
            beyond = [d for task, d in cells if task in sds and abs(d) > 2 * sds[task]]
            text += (f"; beyond ±2 seed SDs of that task's Δ in {len(beyond)} cells: {sum(d > 0 for d in beyond)} "
                     f"positive, {sum(d < 0 for d in beyond)} negative")
        lines.append(text + ".")
    constant = _constant(study)
    if constant:
        main = [r for r in study["rows"] if r["seed"] == study["settings"]["seed"] and r["score"] is not None
                and r["task"] in constant and constant[r["task"]]["score"] is not None]
        margin = [r["score"] - constant[r["task"]]["score"] for r in main]
        per_task = ", ".join(
            f"`{t}` {_f(_mean(r['score'] - constant[t]['score'] for r in main if r['task'] == t), sign=True)}"
            for t in study["settings"]["tasks"] if t in constant)
        lines.append(f"- Trained models vs the constant predictor: better in {sum(m > 0 for m in margin)} of "
                     f"{len(margin)} task × model cells; mean margin in normalised score per task: {per_task}.")
    for paradigm in study["settings"]["paradigms"]:
        if {"moe", "dense"} <= set(study["settings"]["moe"]):
            pairs = defaultdict(dict)
            for r in study["rows"]:
                if r["paradigm"] == paradigm and r["seed"] == study["settings"]["seed"] and r["score"] is not None:
                    pairs[(r["task"], r["fraction"])][r["moe"]] = r["score"]
            diffs = [p["moe"] - p["dense"] for p in pairs.values() if len(p) == 2]
            if diffs:
                lines.append(f"- MoE − dense, {PARADIGM_NAMES[paradigm]}: mean Δscore {_f(_mean(diffs), sign=True)}, "
                             f"MoE better in {sum(d > 0 for d in diffs)} of {len(diffs)} task × data cells.")
    return "\n".join(lines)


def plot(study: dict, entries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = study["settings"]["tasks"]
    kinds = {e["task"]: e["type"] for e in entries}
    panels = [*tasks, "mean over tasks"]
    ncols = 3
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), sharex=True, squeeze=False)
    fractions = study["settings"]["fractions"]
    others = [p for p in study["settings"]["paradigms"] if p != "task_specific"]
    colours = {"grouped": "tab:blue", "unified": "tab:red"}
    styles = {"moe": ("-", "o"), "dense": ("--", "s")}
    info = noise(study)
    constant = _constant(study)
    for ax, panel in zip(axes.flat, panels):
        for paradigm in others:
            for moe in study["settings"]["moe"]:
                ys = []
                for fraction in fractions:
                    chosen = [e[paradigm]["delta_score"] for e in entries if e["fraction"] == fraction
                              and e["moe"] == moe and paradigm in e and (panel == "mean over tasks" or e["task"] == panel)]
                    ys.append(_mean(chosen))
                line, marker = styles[moe]
                ax.plot(fractions, [np.nan if y is None else y for y in ys], line, marker=marker,
                        color=colours.get(paradigm, "k"), label=f"{PARADIGM_NAMES[paradigm]}, {moe}", alpha=0.85)
        noise_entry = (info or {}).get("mean over tasks") if panel == "mean over tasks" else (info or {}).get(
            "tasks", {}).get(panel)
        if info and noise_entry:
            sd = noise_entry["sd_delta"]
            ax.errorbar([info["fraction"]], [0], yerr=[2 * sd], color="grey", capsize=4, lw=1.5,
                        label="±2 SD over seeds (Δ unified)")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(fractions)
        ax.set_xticklabels([_pct(f) for f in fractions])
        ax.minorticks_off()
        title = panel if panel == "mean over tasks" else f"{kinds.get(panel, '')}: {panel}"
        reference = [e["task_specific"]["score"] for e in entries
                     if (panel == "mean over tasks" or e["task"] == panel) and e["task_specific"]["score"] is not None]
        if panel == "mean over tasks":
            reference = [_mean(e["task_specific"]["score"] for e in entries if e["fraction"] == f and e["moe"] == m)
                         for f in fractions for m in study["settings"]["moe"]]
        base = _mean(constant[t]["score"] for t in (tasks if panel == "mean over tasks" else [panel]) if t in constant)
        if reference:
            title += f"\ntask-specific score {min(reference):.2f}–{max(reference):.2f}"
            title += f", constant {base:.2f}" if base is not None else ""
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("Δ normalised score vs task-specific")
    for ax in axes[-1, :]:
        ax.set_xlabel("training data fraction")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in axes.flat[1:len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=9, frameon=False)
    steps = study["settings"]["total_steps"]
    fig.suptitle(f"Grouped / unified vs task-specific (negative = negative transfer); {steps} steps per paradigm, "
                 f"{study['settings']['image_size']} px, random init", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _kept_interpretation(md_path: Path) -> str:
    if md_path.is_file():
        match = re.search(re.escape(MARK_START) + r"\n(.*?)\n" + re.escape(MARK_END), md_path.read_text(), re.S)
        if match:
            return match.group(1).strip()
    return DEFAULT_INTERPRETATION


def setup_text(study: dict) -> str:
    s = study["settings"]
    groups = "; ".join(f"`{g}` = {', '.join(f'`{t}`' for t in ts)}" for g, ts in s["groups"].items())
    data_lines = []
    for name, d in study["datasets"].items():
        val = ", ".join(f"{n}" for n in sorted(set(d["val_samples_per_task"].values())))
        data_lines.append(f"- **{name}** (`{d['path']}`): tasks {', '.join(f'`{t}`' for t in d['tasks'])}; "
                          f"{d['train_images']} training images; validation = its `{d['val_split']}` split "
                          f"({val} samples per task)")
    n = len(s["tasks"])
    moe = (f"MoE in blocks {s['moe_blocks']} with {s['num_experts']} experts, top-{s['top_k']}, task routing"
           if "moe" in s["moe"] else "")
    lines = [
        "## Setup",
        "",
        *data_lines,
        "",
        f"- Tasks ({n}): {', '.join(f'`{t}`' for t in s['tasks'])}. Clinical groups from the task registry: {groups}. "
        "With these datasets the grouped paradigm differs from the unified one only by training the nerve/vessel "
        "task apart; its one-task group *is* the task-specific model (the same run, so its Δ is 0 by construction).",
        f"- Paradigms under one total step budget S = {s['total_steps']} optimizer steps: unified = one model with S "
        f"steps; grouped = one model per group with S·|group|/{n} steps; task-specific = one model per task with "
        f"S/{n} steps. Tasks are drawn uniformly (α = {s['alpha']:g}), so each task gets S/{n} steps in expectation "
        "in every paradigm; warm-up is 5% of a model's steps, then cosine decay.",
        f"- Model: backbone `{s['backbone']}` (4 blocks, width 128, patch 16) **randomly initialised — no pretrained "
        f"DINOv3 weights are reachable here**; {s['image_size']}×{s['image_size']} px letterboxed input, batch "
        f"{s['batch_size']}, AdamW (lr 2e-3 heads / 1e-3 backbone), fp32 on CPU. Settings: `moe` = {moe}; `dense` = "
        "no MoE block. (A one-task model routes every token of its task to the same expert, so task-specific MoE "
        "is effectively dense with one active expert.)",
        f"- Data fractions {', '.join(_pct(f) for f in s['fractions'])}: a seeded subset of each dataset's training "
        "**images** (the HC18 tasks of an image are kept or dropped together), identical for every paradigm and "
        "MoE setting. Validation sets are always complete and identical for all configurations of a task; metrics "
        "are computed in original pixels by the benchmark's scorer. Seed "
        f"{s['seed']} everywhere" + (f"; seeds {', '.join(map(str, s['noise_seeds']))} repeat task-specific and "
                                     f"unified at {_pct(max(s['fractions']))} with MoE to measure seed noise."
                                     if s.get("noise_seeds") else "."),
        "- Normalised score (the trainer's per-task score, in [0, 1], higher is better): DSC for segmentation; "
        "(accuracy + macro F1)/2 for classification; IoU for detection; 1 − MRE/(10% of the image diagonal) for "
        "keypoints (floored at 0). Headline Δ is signed so that **negative = worse than task-specific** (for "
        "MRE ↓, Δ = MRE(task-specific) − MRE(other)).",
        "- *Constant predictor*: what ignoring the image scores on each validation set — the per-pixel majority "
        "class of the training masks, the majority class, the mean training box and keypoints (in letterboxed "
        "coordinates, mapped to each image). Fetal heads are large and central, so it is a strong baseline.",
        "- Training images are letterboxed once to 2× the input size before training (the training transform "
        "then letterboxes them to the input size: the same geometry, much cheaper per step). `fetal_head_axis` "
        "keypoints are re-sorted left end first after augmentation, so a flip or rotation cannot swap the two ends "
        "(the registry allowed hflip for this task until commit 1da7c23).",
    ]
    if s.get("quick"):
        lines.append(f"- **Quick mode**: at most {s['train_limit']} training images per dataset and "
                     f"{s['val_limit']} validation samples per task — a smoke test, not a result.")
    return "\n".join(lines)


def write_report(study: dict, results_dir: Path) -> str:
    """Write aggregation.md and aggregation.png; return the tables printed to the console."""
    results_dir = Path(results_dir)
    entries = comparisons(study)
    info = noise(study)
    md_path = results_dir / "aggregation.md"
    png_path = results_dir / "aggregation.png"
    plot(study, entries, png_path)
    tables = ["### Mean normalised score over tasks", "", mean_score_table(study), "",
              "### Δ normalised score against task-specific, by task type (negative = negative transfer)", "",
              delta_by_type_table(study, entries), "",
              "### Per task: headline metric, its change against task-specific, and normalised scores", "",
              per_task_table(study, entries)]
    if info:
        tables += ["", "### Seed noise", "", noise_table(info)]
    console = "\n".join(tables)
    trained = [m for m in study["models"] if not m.get("same_as")]
    minutes = study["seconds"] / 60
    train_minutes = sum(m["seconds"] for m in trained) / 60
    header = [
        "# Aggregation on real ultrasound: task-specific vs grouped vs unified, with and without MoE",
        "",
        f"Command: `{study['command']}` (commit {study['git_commit']}; {study['machine']['processor']}, "
        f"{study['machine'].get('cpus', '?')} CPUs shared with other jobs, "
        f"{study['machine']['torch_threads']} torch thread(s), torch {study['machine']['torch']}). "
        f"Wall time {minutes:.0f} min for {len(trained)} trained models "
        f"({sum(m['steps'] for m in trained)} steps, {train_minutes:.0f} min of training and evaluation)"
        + (" — partly reused from cached runs." if any(m["cached"] and not m.get("same_as") for m in study["models"])
           else "."),
        "",
        f"![Δ against task-specific by task and data fraction](aggregation.png)",
        "",
        "## Interpretation",
        "",
        MARK_START,
        _kept_interpretation(md_path),
        MARK_END,
        "",
        "Counts (generated from the numbers below):",
        "",
        facts(study, entries, info),
        "",
        setup_text(study),
        "",
        "## Results",
        "",
    ]
    md_path.write_text("\n".join(header) + "\n" + console + "\n")
    return console
