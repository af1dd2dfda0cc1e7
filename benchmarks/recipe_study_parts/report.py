"""The recipe study's report: recipe_study.md (tables rendered from the json, the hand-written
interpretation kept) and recipe_study.png (each factor's Δ of the mean test score, with its SD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.report import interpretation_block

# Issue 23's targets: the mean normalised test score, one headline metric for five tasks, and every
# classification task's macro F1 at least this far above the constant (majority) predictor's.
TARGET_MEAN = 0.80
TASK_TARGETS = {"fetal_head": ("DSC", 0.96), "breast_lesion": ("DSC", 0.75), "nerve_vessel_seg": ("DSC", 0.65),
                "ovary_tumor": ("DSC", 0.80), "fetal_plane_cls": ("Accuracy", 0.80)}
MACRO_F1_MARGIN = 0.15
FIELD = ("The field, for scale (not comparable one to one: other splits, pretrained backbones): FMC_UIA "
         "entries report mean DSC 0.89, accuracy 0.83 and IoU 0.76 on the challenge's validation data; "
         "published from-scratch U-Nets reach a BUSI lesion DSC of about 0.70-0.75, pretrained encoders about 0.80.")
# The metric a task's row shows, the first its kind reports.
SHOWN_METRICS = ("DSC", "Accuracy", "IoU", "MRE", "MAE")


def cell_mean(cell: dict, split: str = "test") -> float:
    scores = cell[split]["scores"]
    return float(np.mean(list(scores.values())))


def paired(study: dict, factor: str, value) -> list[float]:
    """``value(cell) - value(reference cell)`` for each seed that both have run."""
    against = study["factors"][factor]["against"]
    cells = {(c["factor"], c["seed"]): c for c in study["cells"]}
    return [value(cells[(factor, s)]) - value(cells[(against, s)])
            for (f, s) in cells if f == factor and (against, s) in cells]


def mean_sd(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _signed(mean: float, sd: float, digits: int = 3) -> str:
    return f"{mean:+.{digits}f} ± {sd:.{digits}f}"


def factor_rows(study: dict) -> list[dict]:
    rows = []
    for name, factor in study["factors"].items():
        cells = [c for c in study["cells"] if c["factor"] == name]
        if not cells:
            continue
        row = {"factor": name, "question": factor["question"], "against": factor["against"], "seeds": len(cells),
               "test": mean_sd([cell_mean(c) for c in cells]), "val": mean_sd([cell_mean(c, "val") for c in cells]),
               "minutes": float(np.mean([c["train_seconds"] for c in cells])) / 60,
               "images_per_second": float(np.mean([c["images_per_second"] for c in cells])),
               "collapses": sum(sum(c["test"].get("collapsed", {}).values()) for c in cells),
               "class_tasks": sum(len(c["test"].get("collapsed", {})) for c in cells)}
        if name != factor["against"]:
            delta = paired(study, name, cell_mean)
            if delta:
                row["delta_test"] = mean_sd(delta)
                row["delta_val"] = mean_sd(paired(study, name, lambda c: cell_mean(c, "val")))
                speed = paired(study, name, lambda c: np.log(c["images_per_second"]))
                row["speed_ratio"] = float(np.exp(np.mean(speed)))
        rows.append(row)
    return rows


def shown_metric(headline: dict) -> str | None:
    return next((m for m in SHOWN_METRICS if m in headline), None)


def recipe_columns(study: dict) -> list[str]:
    """The whole recipes the targets table shows: the baseline and the combined preset, at the study's length
    and at four times it, where run."""
    return [name for name in ("baseline", "combined", "steps_x4", "combined_x4")
            if any(c["factor"] == name for c in study["cells"])]


def collapsed_seeds(cells: list[dict], task: str) -> int:
    """How many of ``cells`` collapsed to one class on ``task``."""
    return sum(c["test"].get("collapsed", {}).get(task, False) for c in cells)


def _metric_cell(cells: list[dict], task: str, metric: str) -> tuple[float, float] | None:
    values = [c["test"]["headline"][task][metric] for c in cells if metric in c["test"]["headline"].get(task, {})]
    return mean_sd(values) if values else None


def targets_table(study: dict) -> list[str]:
    """Each target beside the constant predictor, the baseline and the combined recipe (mean ± SD over seeds)."""
    columns = recipe_columns(study)
    constant = study["constant"]
    tasks = study["tasks"]
    lines = ["| task | metric | constant | " + " | ".join(f"`{n}`" for n in columns) + " | target |",
             "|---|---|---:|" + "---:|" * len(columns) + "---|"]
    by_factor = {n: [c for c in study["cells"] if c["factor"] == n] for n in columns}
    means = [mean_sd([cell_mean(c) for c in by_factor[n]]) for n in columns]
    constant_mean = float(np.mean([constant["scores"][t] for t in tasks]))
    lines.append(f"| mean of {len(tasks)} tasks | normalised score | {constant_mean:.3f} | "
                 + " | ".join(f"{m:.3f} ± {sd:.3f}" for m, sd in means) + f" | ≥ {TARGET_MEAN:.2f} |")
    for task in tasks:
        floor = constant["headline"].get(task, {})
        rows = [(shown_metric(floor), TASK_TARGETS[task][1] if task in TASK_TARGETS else None)]
        if "F1_macro" in floor:
            rows.append(("F1_macro", floor["F1_macro"] + MACRO_F1_MARGIN))
        for metric, target in rows:
            if metric is None:
                continue
            values = [_metric_cell(by_factor[n], task, metric) for n in columns]
            collapsed = [collapsed_seeds(by_factor[n], task) for n in columns]
            parts = [f"{v[0]:.3f} ± {v[1]:.3f}" + (f" ({k} collapsed)" if k and metric == "F1_macro" else "")
                     if v else "" for v, k in zip(values, collapsed)]
            lines.append(f"| `{task}` | {metric} | {floor[metric]:.3f} | " + " | ".join(parts)
                         + f" | {'≥ ' + format(target, '.2f') if target is not None else ''} |")
    return lines


def macro_f1_table(study: dict) -> list[str]:
    """Each factor's macro F1 per classification task (mean over seeds, collapsed seeds counted)."""
    floor = study["constant"]["headline"]
    tasks = [t for t in study["tasks"] if "F1_macro" in floor.get(t, {})]
    if not tasks:
        return []
    lines = ["| factor | " + " | ".join(f"`{t}`" for t in tasks) + " |", "|---|" + "---:|" * len(tasks),
             "| constant (majority) | " + " | ".join(f"{floor[t]['F1_macro']:.3f}" for t in tasks) + " |"]
    for name in study["factors"]:
        cells = [c for c in study["cells"] if c["factor"] == name]
        if not cells:
            continue
        parts = []
        for task in tasks:
            value = _metric_cell(cells, task, "F1_macro")
            collapsed = collapsed_seeds(cells, task)
            parts.append((f"{value[0]:.3f}" if value else "") + (f" ({collapsed}/{len(cells)} collapsed)"
                                                                 if collapsed else ""))
        lines.append(f"| `{name}` | " + " | ".join(parts) + " |")
    return lines


def length_curve(study: dict) -> list[str]:
    """The budget curve: the cells of the factors that change only the length (the baseline included),
    by steps. Empty when no length factor has run."""
    length_only = [name for name, f in study["factors"].items() if not f["overrides"]]
    if len(length_only) < 2:
        return []
    lines = ["| steps | factor | seeds | test mean | val mean | train min |", "|---:|---|---:|---:|---:|---:|"]
    for name in sorted(length_only, key=lambda n: study["factors"][n]["steps_scale"]):
        cells = [c for c in study["cells"] if c["factor"] == name]
        if cells:
            lines.append(f"| {cells[0]['steps']:,} | `{name}` | {len(cells)} | "
                         "{:.3f} ± {:.3f} | {:.3f} ± {:.3f} | ".format(*mean_sd([cell_mean(c) for c in cells]),
                                                                   *mean_sd([cell_mean(c, "val") for c in cells]))
                         + f"{np.mean([c['train_seconds'] for c in cells]) / 60:.0f} |")
    return lines


def _sharing(jobs: int | None) -> str:
    if jobs is None:  # --finished-only: the cells were trained by earlier calls
        return "cells read from earlier runs, each trained on 1 torch thread (how many shared the cores: below)"
    return f"{jobs} cell(s) at a time with 1 torch thread each"


def render(study: dict, previous: Path | None = None) -> str:
    """The report of ``study``, keeping the interpretation written into ``previous`` (the report it replaces)."""
    rows = factor_rows(study)
    constant = study["constant"]["scores"]
    tasks = study["tasks"]
    lines = ["# Recipe study: the best M2DINO from the public benchmark on 2 CPU cores", "",
             f"Command: `{study['command']}` (commit {study['commit']}; {study['machine']['processor']}, "
             f"{study['machine']['cpus']} CPUs, {_sharing(study['machine'].get('jobs'))}, "
             f"torch {study['machine']['torch']}). Data: `{study['root']}` ({len(tasks)} tasks), trained on "
             "train, chosen on val, reported on test. Baseline: study v2's unified MoE model at 100 % "
             f"(`mini`, 128 px, MoE blocks 2-3 with 4 experts top-1, batch 16, {study['steps']:,} steps, fp32).",
             "", "![Δ of the mean test score per factor](recipe_study.png)", "",
             "## Interpretation", "", *interpretation_block(previous), "",
             "## Factors", "",
             "Mean normalised score over the tasks (DSC for segmentation, (accuracy + macro F1)/2 for "
             "classification, IoU for detection), mean ± SD over seeds; Δ is paired by seed against the "
             "reference cell; *beyond noise* when |Δ| > 2 × its SD (with 2 seeds, a rough rule). Speed: the "
             "ratio of training images per second to the reference's (geometric mean over seeds; the cells "
             "shared 2 cores with other work, so read it as a rough ratio). Collapsed: classification "
             "(task, seed) pairs where at most one class has a non-zero F1 on test.", "",
             "| factor | question | vs | seeds | test mean | Δ test | beyond noise | Δ val | img/s | speed × | "
             "min/cell | collapsed |",
             "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        delta = r.get("delta_test")
        beyond = "" if delta is None else ("**yes**" if abs(delta[0]) > 2 * delta[1] and delta[1] > 0 else "no")
        lines.append(f"| `{r['factor']}` | {r['question']} | {r['against'] if r['factor'] != 'baseline' else ''} | "
                     f"{r['seeds']} | {r['test'][0]:.3f} ± {r['test'][1]:.3f} | "
                     f"{_signed(*delta) if delta else ''} | {beyond} | "
                     f"{_signed(*r['delta_val']) if delta else ''} | {r['images_per_second']:.1f} | "
                     f"{r.get('speed_ratio', 1.0):.2f} | {r['minutes']:.0f} | {r['collapses']}/{r['class_tasks']} |")
    constant_mean = float(np.mean([constant[t] for t in tasks]))
    lines += ["", f"Constant predictor (ignores the image) on test: mean {constant_mean:.3f}.", "",
              "## Targets", "",
              "Headline metrics on test (mean ± SD over seeds) beside the constant predictor (the majority "
              "class, the mean mask or box, fitted on train) and issue 23's targets; a classification task's "
              f"macro-F1 target is the constant's + {MACRO_F1_MARGIN}, and no seed may collapse to one class.", "",
              *targets_table(study), "", FIELD, "",
              "## Classification: macro F1 (test)", "",
              "Mean over seeds; a seed is *collapsed* when at most one class has a non-zero F1.", "",
              *macro_f1_table(study), ""]
    curve = length_curve(study)
    if curve:
        lines += ["## Length", "", "The baseline at other step budgets (warm-up and checkpoints scale with it); "
                  "mean normalised score, mean ± SD over seeds.", "", *curve, ""]
    lines += ["## Per task (test)", "",
              "Each factor's column is its Δ against its reference, paired by seed (mean ± SD).", ""]
    names = [r["factor"] for r in rows]
    header = "| task | constant | " + " | ".join(f"`{n}`" for n in names) + " |"
    lines += [header, "|---|---:|" + "---:|" * len(names)]
    cells = study["cells"]
    for task in tasks:
        parts = [f"`{task}`", f"{constant[task]:.3f}"]
        for name in names:
            mine = [c for c in cells if c["factor"] == name]
            against = study["factors"][name]["against"]
            if name == against:
                parts.append("{:.3f} ± {:.3f}".format(*mean_sd([c["test"]["scores"][task] for c in mine])))
            else:
                delta = paired(study, name, lambda c, t=task: c["test"]["scores"][t])
                parts.append(_signed(*mean_sd(delta)) if delta else "")
        lines.append("| " + " | ".join(parts) + " |")
    if study.get("not_yet_run"):
        lines += ["", "Not yet run: " + ", ".join(study["not_yet_run"]) + "."]
    lines += ["", "## Cells", "", "| factor | seed | commit | steps | train min | img/s | test mean | val mean |",
              "|---|---:|---|---:|---:|---:|---:|---:|"]
    for c in cells:
        lines.append(f"| `{c['factor']}` | {c['seed']} | {c['commit']} | {c['steps']} | {c['train_seconds'] / 60:.1f} "
                     f"| {c['images_per_second']:.1f} | {cell_mean(c):.3f} | {cell_mean(c, 'val'):.3f} |")
    return "\n".join(lines) + "\n"


def plot(study: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in factor_rows(study) if "delta_test" in r]
    fig, ax = plt.subplots(figsize=(7, 0.45 * max(2, len(rows)) + 1))
    if rows:
        ax.barh([f"{r['factor']} (vs {r['against']}, {r['seeds']} seed{'s' if r['seeds'] > 1 else ''})" for r in rows],
                [r["delta_test"][0] for r in rows],
                xerr=[r["delta_test"][1] for r in rows], color="#4c72b0")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Δ mean normalised test score (paired by seed)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(study: dict, results_dir: Path) -> str:
    md = results_dir / "recipe_study.md"
    text = render(study, md)
    md.write_text(text)
    plot(study, results_dir / "recipe_study.png")
    return text
