"""Tables, plot and markdown of `benchmarks/aggregation.py` (from its JSON, so they can be rebuilt).

Every statistic is over seeds: a configuration's score is the mean over its seeds, its noise the
standard deviation (SD) over them, and a difference counts as beyond noise when it exceeds twice
the larger SD of the two configurations compared (the rule of `benchmarks/label_efficiency.py`).
Differences against task-specific are paired by seed (the same seed draws the same data subset).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from harness.report import interpretation_block

PARADIGM_NAMES = {"task_specific": "task-specific", "grouped": "grouped", "affinity": "affinity-grouped",
                  "unified": "unified"}
GROUPED = ("grouped", "affinity")  # paradigms with one model per group


# ------------------------------------------------------------------------------------ numbers
def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _sd(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def beyond_noise(a: list[float], b: list[float]) -> bool | None:
    """Whether mean(a) and mean(b) differ by more than 2 × the larger SD over seeds (None: fewer
    than 2 seeds on a side, so the noise is unknown)."""
    sd_a, sd_b = _sd(a), _sd(b)
    if sd_a is None or sd_b is None:
        return None
    return abs(np.mean(a) - np.mean(b)) > 2 * max(sd_a, sd_b)


class Scores:
    """The study's normalised scores by (task, fraction, MoE setting, paradigm) and seed."""

    def __init__(self, study: dict) -> None:
        self.settings = study["settings"]
        self.by: dict[tuple, dict[int, float]] = defaultdict(dict)
        self.info: dict[str, dict] = {}
        for row in study["rows"]:
            if row["score"] is not None:
                self.by[(row["task"], row["fraction"], row["moe"], row["paradigm"])][row["seed"]] = row["score"]
            self.info.setdefault(row["task"], {"type": row["type"], "group": row["group"], "metric": row["metric"]})
        self.tasks = [t for t in self.settings["tasks"] if t in self.info]
        self.constant = {r["task"]: r["score"] for r in study.get("constant_baseline", [])}

    def seeds(self, task: str, fraction: float, moe: str, paradigm: str) -> dict[int, float]:
        return self.by.get((task, fraction, moe, paradigm), {})

    def values(self, task: str, fraction: float, moe: str, paradigm: str) -> list[float]:
        return list(self.seeds(task, fraction, moe, paradigm).values())

    def delta(self, task: str, fraction: float, moe: str, paradigm: str) -> dict[int, float]:
        """Per seed: paradigm − task-specific (same seed, same data subset)."""
        other, reference = self.seeds(task, fraction, moe, paradigm), self.seeds(task, fraction, moe, "task_specific")
        return {seed: other[seed] - reference[seed] for seed in other if seed in reference}

    def groups(self, paradigm: str) -> dict[str, list[str]]:
        return self.settings["affinity_groups"] if paradigm == "affinity" else self.settings["groups"]

    def shares_model_with_task_specific(self, task: str, paradigm: str) -> bool:
        """A task alone in its group: its grouped model is its task-specific model (Δ = 0 by
        construction). Never so for unified."""
        if paradigm not in GROUPED:
            return False
        return any(members == [task] for members in self.groups(paradigm).values())

    def pooled_delta(self, tasks: list[str], fraction: float, moe: str, paradigm: str) -> dict[int, float]:
        """Per seed: the mean over ``tasks`` of paradigm − task-specific (seeds every task has)."""
        per_task = [self.delta(t, fraction, moe, paradigm) for t in tasks]
        common = set.intersection(*(set(d) for d in per_task)) if per_task else set()
        return {seed: float(np.mean([d[seed] for d in per_task])) for seed in sorted(common)}


def _f(value, digits: int = 3, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ms(values, digits: int = 3, sign: bool = False) -> str:
    """mean ± SD over seeds (mean alone for one seed)."""
    mean, sd = _mean(values), _sd(values)
    if mean is None:
        return "n/a"
    return _f(mean, digits, sign) + (f" ± {sd:.{digits}f}" if sd is not None else "")


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100)}%"


def _others(study: dict) -> list[str]:
    return [p for p in study["settings"]["paradigms"] if p != "task_specific"]


# ---------------------------------------------------------------------- is it data-limited?
def data_limited(scores: Scores) -> list[dict]:
    """Per task: task-specific at the smallest and the largest fraction, the constant predictor, and
    whether the larger fraction wins beyond seed noise."""
    fractions = scores.settings["fractions"]
    low, high = min(fractions), max(fractions)
    moe = scores.settings["moe"][0]  # a one-task model is dense whatever the setting
    out = []
    for task in scores.tasks:
        small, large = scores.values(task, low, moe, "task_specific"), scores.values(task, high, moe, "task_specific")
        if not small or not large:
            continue
        out.append({"task": task, "type": scores.info[task]["type"], "constant": scores.constant.get(task),
                    "low": small, "high": large, "gain": float(np.mean(large) - np.mean(small)),
                    "beyond_noise": beyond_noise(large, small) if np.mean(large) > np.mean(small) else False,
                    "margin_over_constant": (None if scores.constant.get(task) is None
                                             else float(np.mean(large)) - scores.constant[task])})
    return out


def data_limited_table(scores: Scores, entries: list[dict]) -> str:
    fractions = scores.settings["fractions"]
    low, high = _pct(min(fractions)), _pct(max(fractions))
    lines = [f"| task | type | constant predictor | task-specific {low} | task-specific {high} | gain | beyond 2 SD | "
             f"{high} − constant |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for e in entries:
        verdict = {True: "**yes**", False: "no", None: "n/a (1 seed)"}[e["beyond_noise"]]
        lines.append(f"| `{e['task']}` | {e['type']} | {_f(e['constant'])} | {_ms(e['low'])} | {_ms(e['high'])} | "
                     f"{_f(e['gain'], sign=True)} | {verdict} | {_f(e['margin_over_constant'], sign=True)} |")
    beyond = sum(bool(e["beyond_noise"]) for e in entries)
    margins = [e["margin_over_constant"] for e in entries if e["margin_over_constant"] is not None]
    lines.append(f"\n{high} beats {low} beyond seed noise for **{beyond} of {len(entries)}** tasks. Margin of "
                 f"task-specific at {high} over the constant predictor: smallest "
                 f"{_f(min(margins, default=None), sign=True)}"
                 f", median {_f(float(np.median(margins)) if margins else None, sign=True)} (normalised score).")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ comparisons
def mean_score_table(study: dict, scores: Scores) -> str:
    """Mean normalised score over tasks per configuration: mean ± SD over seeds of the task mean."""
    columns = [(p, m) for p in study["settings"]["paradigms"] for m in study["settings"]["moe"]
               if p != "task_specific" or m == study["settings"]["moe"][0]]
    label = {("task_specific", m): "task-specific" for m in study["settings"]["moe"]}
    lines = ["| data | " + " | ".join(label.get((p, m), f"{PARADIGM_NAMES[p]} {m}") for p, m in columns)
             + " | constant predictor |", "|---|" + "---:|" * (len(columns) + 1)]
    constant = _f(_mean(scores.constant.get(t) for t in scores.tasks))
    for fraction in study["settings"]["fractions"]:
        cells = []
        for paradigm, moe in columns:
            per_task = [scores.seeds(t, fraction, moe, paradigm) for t in scores.tasks]
            common = set.intersection(*(set(d) for d in per_task)) if per_task else set()
            cells.append(_ms([np.mean([d[s] for d in per_task]) for s in sorted(common)]))
        lines.append(f"| {_pct(fraction)} | " + " | ".join(cells) + f" | {constant} |")
    return "\n".join(lines)


def _delta_columns(study: dict) -> list[tuple[str, str]]:
    return [(p, m) for p in _others(study) for m in study["settings"]["moe"]]


def _pooled_cell(scores: Scores, tasks: list[str], fraction: float, moe: str, paradigm: str) -> str:
    tasks = [t for t in tasks if not scores.shares_model_with_task_specific(t, paradigm)]
    pooled = scores.pooled_delta(tasks, fraction, moe, paradigm) if tasks else {}
    return _ms(list(pooled.values()), sign=True) if pooled else "–"


def delta_table(study: dict, scores: Scores, by: str) -> str:
    """Δ normalised score against task-specific, pooled over the tasks of each task type or clinical
    group (mean ± SD over seeds of the per-seed mean). Grouped leaves out tasks alone in their group
    (their grouped model is the task-specific one, Δ = 0 by construction)."""
    columns = _delta_columns(study)
    keys = list(dict.fromkeys(scores.info[t][by] for t in scores.tasks))
    lines = [f"| {'task type' if by == 'type' else 'clinical group'} (tasks) | data | "
             + " | ".join(f"Δ {PARADIGM_NAMES[p]} {m}" for p, m in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for key in [*keys, "all tasks"]:
        members = [t for t in scores.tasks if key == "all tasks" or scores.info[t][by] == key]
        label = f"all tasks ({len(members)})" if key == "all tasks" else f"{key} ({', '.join(members)})"
        for fraction in study["settings"]["fractions"]:
            cells = [_pooled_cell(scores, members, fraction, m, p) for p, m in columns]
            lines.append(f"| {label} | {_pct(fraction)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_table(study: dict, scores: Scores) -> str:
    others = _others(study)
    head = ["task", "type", "data", "MoE", "task-specific"] + [f"{PARADIGM_NAMES[p]} Δ" for p in others]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(head) - 4)]
    for task in scores.tasks:
        for fraction in study["settings"]["fractions"]:
            for moe in study["settings"]["moe"]:
                reference = scores.values(task, fraction, moe, "task_specific")
                cells = [f"`{task}`", scores.info[task]["type"], _pct(fraction), moe, _ms(reference)]
                for p in others:
                    if scores.shares_model_with_task_specific(task, p):
                        cells.append("= task-specific")
                        continue
                    delta = list(scores.delta(task, fraction, moe, p).values())
                    mark = " *" if beyond_noise(scores.values(task, fraction, moe, p), reference) else ""
                    cells.append(_ms(delta, sign=True) + mark)
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + ("\n\n`*`: the paradigm's score differs from task-specific's by more than 2 × the larger "
                               "SD over seeds.")


# ------------------------------------------------------------------------- the paper's claims
def claims(study: dict, scores: Scores) -> list[dict]:
    """The paper's three claims beside what the study measured (numbers, and a verdict by a stated
    rule; the interpretation says what the rule cannot see)."""
    fractions = study["settings"]["fractions"]
    low, high = min(fractions), max(fractions)
    out = []
    if "grouped" in study["settings"]["paradigms"]:
        shared = [t for t in scores.tasks if not scores.shares_model_with_task_specific(t, "grouped")]
        parts, verdicts = [], []
        for moe in study["settings"]["moe"]:
            hi = scores.pooled_delta(shared, high, moe, "grouped")
            lo = scores.pooled_delta(shared, low, moe, "grouped")
            parts.append(f"{moe}: {_pct(high)} {_ms(list(hi.values()), sign=True)}, "
                         f"{_pct(low)} {_ms(list(lo.values()), sign=True)}")
            high_ok, low_ok = _sign_verdict(hi, positive=True), _sign_verdict(lo, positive=False)
            verdicts.append(None if high_ok is None or low_ok is None else high_ok and low_ok)
        out.append({"claim": "(i) Grouped training helps with plenty of data and hurts with little",
                    "measured": f"Δ grouped − task-specific over the {len(shared)} tasks that share a group "
                                f"({', '.join(parts)})",
                    "rule": f"Δ > 0 at {_pct(high)} and < 0 at {_pct(low)}, each beyond 2 SD over seeds",
                    "verdict": _verdict(verdicts)})
    if {"grouped", "unified"} <= set(study["settings"]["paradigms"]):
        groups = [g for g, members in study["settings"]["groups"].items() if len(members) > 1]
        parts, verdicts = [], []
        for fraction in fractions:
            for moe in study["settings"]["moe"]:
                spread = {}
                for paradigm in ("grouped", "unified"):
                    per_group = [_mean(scores.pooled_delta(study["settings"]["groups"][g], fraction, moe,
                                                           paradigm).values()) for g in groups]
                    spread[paradigm] = _sd(per_group)
                parts.append(f"{_pct(fraction)} {moe}: unified {_f(spread['unified'])}, "
                             f"grouped {_f(spread['grouped'])}")
                if spread["unified"] is not None and spread["grouped"] is not None:
                    verdicts.append(spread["unified"] < spread["grouped"])
        out.append({"claim": "(ii) Unified training is more consistent across clinical groups",
                    "measured": f"SD across the {len(groups)} multi-task groups of the group-mean Δ against "
                                f"task-specific ({'; '.join(parts)})",
                    "rule": "unified's SD across groups below grouped's in every data × MoE cell",
                    "verdict": ("agrees" if verdicts and all(verdicts) else
                                "disagrees" if verdicts and not any(verdicts) else "mixed" if verdicts else "n/a")
                    + (f" ({sum(verdicts)} of {len(verdicts)} cells)" if verdicts else "")})
    sensitivity = {}
    for task in scores.tasks:
        for fraction in fractions:
            for moe in study["settings"]["moe"]:
                for paradigm in _others(study):
                    if scores.shares_model_with_task_specific(task, paradigm):
                        continue
                    delta = scores.delta(task, fraction, moe, paradigm)
                    if delta:
                        sensitivity.setdefault(scores.info[task]["type"], []).append(abs(np.mean(list(delta.values()))))
    if sensitivity:
        ranked = sorted(sensitivity, key=lambda k: -np.mean(sensitivity[k]))
        out.append({"claim": "(iii) Segmentation is the most sensitive task type",
                    "measured": "mean absolute Δ against task-specific over tasks × data × MoE × paradigm: "
                                + ", ".join(f"{k} {_f(float(np.mean(sensitivity[k])))} (n = {len(sensitivity[k])})"
                                            for k in ranked),
                    "rule": "segmentation has the largest mean absolute Δ",
                    "verdict": "agrees" if ranked[0] == "segmentation" else f"disagrees ({ranked[0]} is)"})
    if {"grouped", "affinity"} <= set(study["settings"]["paradigms"]):
        parts, verdicts = [], []
        for fraction in fractions:
            for moe in study["settings"]["moe"]:
                per_seed = {}
                for paradigm in GROUPED:
                    per_seed[paradigm] = scores.pooled_delta(scores.tasks, fraction, moe, paradigm)
                common = sorted(set(per_seed["grouped"]) & set(per_seed["affinity"]))
                difference = {s: per_seed["affinity"][s] - per_seed["grouped"][s] for s in common}
                parts.append(f"{_pct(fraction)} {moe}: {_ms(list(difference.values()), sign=True)}")
                verdicts.append(_sign_verdict(difference, positive=True))
        out.append({"claim": "(part 4) The affinity grouping beats the clinical grouping at the same budget",
                    "measured": "mean over all tasks of affinity-grouped − grouped (" + "; ".join(parts) + ")",
                    "rule": "> 0 beyond 2 SD over seeds in every data × MoE cell", "verdict": _verdict(verdicts)})
    return out


def _sign_verdict(per_seed: dict[int, float], positive: bool) -> bool | None:
    """Whether the per-seed values lie beyond 2 SD of zero on the given side (None: < 2 seeds)."""
    values = list(per_seed.values())
    if len(values) < 2:
        return None
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    return (mean > 2 * sd) if positive else (mean < -2 * sd)


def _verdict(results: list[bool | None]) -> str:
    known = [r for r in results if r is not None]
    if not known:
        return "n/a (fewer than 2 seeds)"
    if all(known):
        return "agrees"
    return "not supported" + (f" (holds in {sum(known)} of {len(known)} cells)" if any(known) else "")


def claims_table(rows: list[dict]) -> str:
    lines = ["| paper's claim | what the study measured | rule | verdict |", "|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['measured']} | {c['rule']} | **{c['verdict']}** |" for c in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ picture
def plot(study: dict, scores: Scores, limited: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["data", *scores.tasks, "mean over tasks"]
    ncols = 4
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 3.3 * nrows), squeeze=False)
    fractions = study["settings"]["fractions"]
    colours = {"grouped": "tab:blue", "affinity": "tab:purple", "unified": "tab:red"}
    styles = {"moe": ("-", "o"), "dense": ("--", "s")}
    for ax, panel in zip(axes.flat, panels):
        if panel == "data":
            _plot_data_limited(ax, limited, fractions)
            continue
        members = scores.tasks if panel == "mean over tasks" else [panel]
        for paradigm in _others(study):
            chosen = [t for t in members if not scores.shares_model_with_task_specific(t, paradigm)]
            if not chosen:
                continue
            for index, moe in enumerate(study["settings"]["moe"]):
                per_seed = [list(scores.pooled_delta(chosen, f, moe, paradigm).values()) for f in fractions]
                ys = [np.mean(v) if v else np.nan for v in per_seed]
                errors = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in per_seed]
                line, marker = styles.get(moe, ("-", "o"))
                offset = 1 + 0.03 * (index - 0.5) + 0.06 * (_others(study).index(paradigm) - 1)
                ax.errorbar([f * offset for f in fractions], ys, yerr=errors, fmt=line, marker=marker, capsize=3,
                            color=colours.get(paradigm, "k"), label=f"{PARADIGM_NAMES[paradigm]}, {moe}", alpha=0.85)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlim(min(fractions) * 0.8, max(fractions) * 1.25)  # also for a panel with no line yet
        ax.set_xticks(fractions)
        ax.set_xticklabels([_pct(f) for f in fractions])
        ax.minorticks_off()
        title = panel if panel == "mean over tasks" else f"{scores.info[panel]['type']}: {panel}"
        if panel != "mean over tasks" and scores.shares_model_with_task_specific(panel, "grouped"):
            title += "\n(alone in its group: grouped = task-specific)"
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("Δ score vs task-specific", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat[1:len(panels)]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=9, frameon=False)
    s = study["settings"]
    seeds = sorted({r["seed"] for r in study["rows"]})
    fig.suptitle(f"Each paradigm − task-specific, mean ± SD over seeds {', '.join(map(str, seeds))} "
                 f"(negative = negative transfer); {s['total_steps']} steps per paradigm, {s['image_size']} px, "
                 "random init", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_data_limited(ax, limited: list[dict], fractions: list[float]) -> None:
    x = np.arange(len(limited))
    for shift, key, colour, label in ((-0.27, "constant", "lightgrey", "constant predictor"),
                                      (0.0, "low", "tab:orange", f"task-specific {_pct(min(fractions))}"),
                                      (0.27, "high", "tab:green", f"task-specific {_pct(max(fractions))}")):
        if key == "constant":
            ax.bar(x + shift, [e["constant"] or 0 for e in limited], 0.27, color=colour, label=label)
        else:
            ax.bar(x + shift, [np.mean(e[key]) for e in limited], 0.27, color=colour, label=label,
                   yerr=[np.std(e[key], ddof=1) if len(e[key]) > 1 else 0 for e in limited], capsize=2)
    ax.set_xticks(x)
    ax.set_xticklabels([e["task"] for e in limited], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("normalised score", fontsize=8)
    ax.set_title("task-specific: data-limited?", fontsize=9)
    ax.set_ylim(0, 1.25)  # room for the legend above the bars
    ax.legend(fontsize=6.5, loc="upper center", ncol=3, frameon=False)


# ---------------------------------------------------------------------------------- markdown
def setup_text(study: dict) -> str:
    s = study["settings"]
    groups = "; ".join(f"`{g}` = {', '.join(f'`{t}`' for t in ts)}" for g, ts in s["groups"].items())
    data_lines = []
    for name, d in study["datasets"].items():
        val = sorted(set(d["val_samples_per_task"].values()))
        data_lines.append(f"- **{name}** (`{d['path']}`): tasks {', '.join(f'`{t}`' for t in d['tasks'])}; "
                          f"{d['train_images']} training images; scored on `{d['val_split']}` "
                          f"({val[0]}–{val[-1]} samples per task)")
    n = len(s["tasks"])
    moe = (f"MoE in blocks {s['moe_blocks']} with {s['num_experts']} experts, top-{s['top_k']}, task routing"
           if "moe" in s["moe"] else "")
    lines = [
        "## Setup",
        "",
        *data_lines,
        "",
        f"- Tasks ({n}): {', '.join(f'`{t}`' for t in s['tasks'])}. Clinical groups from the task registry: {groups}. "
        "A task alone in its group has one grouped model, its task-specific one (the same run: Δ = 0 by "
        "construction, left out of grouped's pooled numbers)."
        + (" Affinity groups (`benchmarks/task_affinity.py`, same budget rule): " + "; ".join(
            f"`{g}` = {', '.join(f'`{t}`' for t in ts)}" for g, ts in s["affinity_groups"].items()) + "."
           if s.get("affinity_groups") else ""),
        f"- Paradigms under one total step budget S = {s['total_steps']} optimizer steps: unified = one model with S "
        f"steps; grouped = one model per group with S·|group|/{n} steps; task-specific = one model per task with "
        f"S/{n} steps. Tasks are drawn uniformly (α = {s['alpha']:g}), so each task gets S/{n} steps in expectation "
        "in every paradigm; warm-up is 5% of a model's steps, then cosine decay. Every model is scored once, at "
        "its last step (no checkpoint selection), so the scoring split is never used to choose anything.",
        f"- Model: backbone `{s['backbone']}` (4 blocks, width 128, patch 16) **randomly initialised: no pretrained "
        f"DINOv3 weights are reachable here**; {s['image_size']}×{s['image_size']} px letterboxed input, batch "
        f"{s['batch_size']}, AdamW (lr 2e-3 heads / 1e-3 backbone), fp32 on CPU. Settings: `moe` = {moe}; `dense` = "
        "no MoE block. A one-task model is always dense: task routing sends all of a task's tokens to one "
        "expert, a copy of the dense MLP, so task-specific MoE and dense are one run.",
        f"- Data fractions {', '.join(_pct(f) for f in s['fractions'])}: a seeded subset of each dataset's training "
        "**images**; every task of an image (BUSI's lesion mask and class, DDTI's mask and box) keeps or drops it "
        "together, so a joint model sees no more distinct images than the single-task ones. Seeds "
        f"{', '.join(map(str, sorted({r['seed'] for r in study['rows']})))}: a seed draws the subset and "
        "initialises the model, and is the same for "
        "every paradigm and MoE setting (differences are paired by seed). Scoring sets are always complete; "
        "metrics are computed in original pixels by the benchmark's scorer.",
        "- Normalised score (the trainer's per-task score, in [0, 1], higher is better): DSC for segmentation; "
        "(accuracy + macro F1)/2 for classification; IoU for detection.",
        "- *Constant predictor*: what ignoring the image scores on each scoring set: the per-pixel majority "
        "class of the training masks, the class frequencies, the mean training box (in letterboxed "
        "coordinates, mapped to each image).",
        "- Training images are letterboxed once to 2× the input size before training (the training transform "
        "then letterboxes them to the input size: the same geometry, much cheaper per step).",
    ]
    if s.get("quick"):
        lines.append(f"- **Quick mode**: at most {s['train_limit']} training images per dataset and "
                     f"{s['val_limit']} scoring samples per task: a smoke test, not a result.")
    return "\n".join(lines)


def write_report(study: dict, results_dir: Path) -> str:
    """Write aggregation.md and aggregation.png; return the tables printed to the console."""
    results_dir = Path(results_dir)
    scores = Scores(study)
    limited = data_limited(scores)
    md_path, png_path = results_dir / "aggregation.md", results_dir / "aggregation.png"
    plot(study, scores, limited, png_path)
    tables = ["### Is the study data-limited? Task-specific at the smallest and the largest fraction", "",
              data_limited_table(scores, limited), "",
              "### The paper's claims beside the study", "", claims_table(claims(study, scores)), "",
              "### Mean normalised score over tasks (mean ± SD over seeds)", "", mean_score_table(study, scores), ""]
    if _others(study):
        tables += ["Grouped paradigms pool only the tasks that share a group with another task: a task alone in its "
                   "group has Δ = 0 by construction (its grouped model is its task-specific one).", "",
                   "### Δ normalised score against task-specific by task type (negative = negative transfer)", "",
                   delta_table(study, scores, "type"), "",
                   "### Δ normalised score against task-specific by clinical group", "",
                   delta_table(study, scores, "group"), ""]
    tables += ["### Per task: task-specific score and each paradigm's Δ (mean ± SD over seeds)", "",
               per_task_table(study, scores)]
    console = "\n".join(tables)
    trained = [m for m in study["models"] if not m.get("same_as")]
    header = [
        "# Aggregation on real ultrasound: task-specific vs grouped vs unified, with and without MoE",
        "",
        f"Command: `{study['command']}` (commit {study['git_commit']}; {study['machine']['processor']}, "
        f"{study['machine'].get('cpus', '?')} CPUs, {study['machine'].get('jobs', 1)} model(s) at a time with "
        f"{study['machine']['torch_threads']} torch thread(s) each, torch {study['machine']['torch']}). "
        f"{len(trained)} distinct models, {sum(m['steps'] for m in trained)} steps, "
        f"{sum(m['seconds'] for m in trained) / 3600:.1f} h of training and scoring summed over models"
        + (" (finished runs reused from the run folders, so the study could run in parts)."
           if any(m["cached"] for m in trained) else "."),
        *(["", f"**A study in parts: {len(study['not_yet_run'])} planned models have not run yet** (left out of every "
            "number below): " + ", ".join(f"`{m}`" for m in study["not_yet_run"]) + "."]
          if study.get("not_yet_run") else []),
        "",
        "![Δ against task-specific by task and data fraction](aggregation.png)",
        "",
        "## Interpretation",
        "",
        *interpretation_block(md_path),
        "",
        setup_text(study),
        "",
        "## Results",
        "",
        "Statistics are over seeds: mean ± SD; a difference is *beyond noise* when it exceeds 2 × the larger SD "
        "of the two configurations. With 2 seeds an SD is a rough estimate: read the counts, not single cells.",
        "",
    ]
    md_path.write_text("\n".join(header) + "\n" + console + "\n")
    return console
