"""The recipe study's report: recipe_study.md (tables rendered from the json, the hand-written
interpretation kept) and recipe_study.png (each factor's Δ of the mean test score, with its SD)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.report import interpretation_block


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


def render(study: dict, previous: Path | None = None) -> str:
    """The report of ``study``, keeping the interpretation written into ``previous`` (the report it replaces)."""
    rows = factor_rows(study)
    constant = study["constant"]["scores"]
    tasks = study["tasks"]
    lines = ["# Recipe study: the best M2DINO from the public benchmark on 2 CPU cores", "",
             f"Command: `{study['command']}` (commit {study['commit']}; {study['machine']['processor']}, "
             f"{study['machine']['cpus']} CPUs, {study['machine']['jobs']} cell(s) at a time with 1 torch thread "
             f"each, torch {study['machine']['torch']}). Data: `{study['root']}` ({len(tasks)} tasks), trained on "
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
              "## Per task (test)", "",
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
        ax.barh([f"{r['factor']} (vs {r['against']})" for r in rows], [r["delta_test"][0] for r in rows],
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
