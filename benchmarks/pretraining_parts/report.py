"""Statistics of the comparison (mean ± SD over seeds, the 2-SD rule) and the markdown report, which is a
function of the result JSON alone (``--rerender``)."""

from __future__ import annotations

import math
import statistics

INITS = ("random", "pretrained")
GAP_RULE = ("the gap exceeds 2 SDs when |mean(pretrained) − mean(random)| > 2 × max(SD(pretrained), "
            "SD(random)), with SD the sample standard deviation (n − 1) over seeds")


def summarise(values: list[float]) -> dict:
    return {"n": len(values), "mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) >= 2 else None, "values": values}


def verdict(random: dict, pretrained: dict) -> str:
    """'pretrained', 'random' (whichever is ahead by more than 2 SDs), 'within 2 SD', or 'n < 2'."""
    if random["n"] < 2 or pretrained["n"] < 2:
        return "n < 2"
    gap = pretrained["mean"] - random["mean"]
    if abs(gap) > 2 * max(random["sd"], pretrained["sd"]):
        return "pretrained" if gap > 0 else "random"
    return "within 2 SD"


def comparison_row(section: str, label: str, metric: str, per_init: dict[str, list[float]], frozen: bool) -> dict:
    random, pretrained = (summarise(per_init.get(init, [])) for init in INITS)
    difference = pretrained["mean"] - random["mean"] if random["n"] and pretrained["n"] else None
    return {"section": section, "cell": label, "metric": metric, "frozen_backbone": frozen, "random": random,
            "pretrained": pretrained, "difference": difference, "verdict": verdict(random, pretrained)}


def fmt(summary: dict, digits: int = 3) -> str:
    if not summary["n"]:
        return "missing"
    sd = "n/a" if summary["sd"] is None else f"{summary['sd']:.{digits}f}"
    return f"{summary['mean']:.{digits}f} ± {sd} (n={summary['n']})"


VERDICT_TEXT = {"pretrained": "yes, pretrained ahead", "random": "yes, random init ahead",
                "within 2 SD": "no", "n < 2": "n/a (fewer than 2 seeds)"}


def table(rows: list[dict]) -> list[str]:
    lines = ["| | cell | metric | random init | pretrained | difference | gap > 2 SD? |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        diff = "n/a" if r["difference"] is None else f"{r['difference']:+.3f}"
        lines.append(f"| {r['section']} | {r['cell']} | {r['metric']} | {fmt(r['random'])} | {fmt(r['pretrained'])} "
                     f"| {diff} | {VERDICT_TEXT[r['verdict']]} |")
    return lines


def per_seed_lines(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        parts = [f"{init}: {', '.join(f'{v:.3f}' for v in r[init]['values']) or 'none'}" for init in INITS]
        lines.append(f"- {r['section']} {r['cell']}, {r['metric']}: {'; '.join(parts)}")
    return lines


def reading(result: dict) -> list[str]:
    """What the numbers say, computed from them (a rerun keeps the text true)."""
    rows = result["rows"]
    headline = [r for r in rows if r["metric"] in ("accuracy", "DSC")]
    frozen = [r for r in headline if r["frozen_backbone"]]
    out = pretraining_reading(result["pretraining"])
    won = [r for r in frozen if r["verdict"] == "pretrained"]
    out.append(f"- Target (pretrained ahead of random init by more than 2 seed SDs in every frozen-backbone cell): "
               f"{'met' if frozen and len(won) == len(frozen) else 'not met'}: {len(won)} of {len(frozen)} frozen "
               f"cells ({', '.join(r['cell'] for r in won) or 'none'}).")
    for r in headline:
        if r["difference"] is None:
            out.append(f"- {r['cell']}: missing one side, no comparison.")
            continue
        relative = f", {r['difference'] / r['random']['mean']:+.1%} of random init" if r["random"]["mean"] else ""
        out.append(f"- {r['cell']} ({r['metric']}): {r['random']['mean']:.3f} → {r['pretrained']['mean']:.3f} "
                   f"({r['difference']:+.3f}{relative}); "
                   + {"pretrained": "more than 2 SDs in favour of pretraining.",
                      "random": "more than 2 SDs in favour of random init.",
                      "within 2 SD": "within 2 SDs: no difference this benchmark can resolve.",
                      "n < 2": "fewer than 2 seeds on a side."}[r["verdict"]])
    return out


def pretraining_reading(pre: dict) -> list[str]:
    """Whether the pretraining objective moved at all: a DINO loss at ln(prototypes) is that of a uniform
    student prediction, and a loss that did not fall after the warm-ups learned nothing measurable."""
    trend = (pre.get("wall") or {}).get("loss_trend")
    if not trend or "dino_loss" not in trend:
        return []
    flat = [k for k in ("dino_loss", "ibot_loss") if k in trend
            and trend[k]["late"] > trend[k]["early"] - 0.01 * abs(trend[k]["early"])]
    uniform = pre.get("prototypes") and abs(trend["dino_loss"]["late"] - math.log(pre["prototypes"])) < 0.005
    text = "- Pretraining: "
    if uniform:
        text += (f"the DINO loss sat at ln({pre['prototypes']}) = {math.log(pre['prototypes']):.3f}, the value of a "
                 "uniform student prediction over the prototypes, so the image-level objective learned nothing "
                 "measurable; ")
    if flat:
        text += (f"{' and '.join(flat)} fell by less than 1 % after the warm-ups"
                 + (" while KoLeo (which only spreads the CLS features apart) did fall" if "koleo_loss" in trend
                    and trend["koleo_loss"]["late"] < trend["koleo_loss"]["early"] else "")
                 + ". The downstream cells below therefore test a backbone whose self-supervised losses did not "
                   "fall, not what the recipe gives when it learns.")
    else:
        text += "the DINO and iBOT losses fell after the warm-ups."
    return [text]


def render(result: dict) -> str:
    pre, pool, s = result["pretraining"], result["pretraining"]["pool"], result["settings"]
    wall = pre.get("wall")
    repeated = [f"{d} ({c['files'] / c['distinct']:.1f}×)" for d, c in pool["per_dataset"].items()
                if c["files"] > 1.2 * c["distinct"]]
    m, git = result["machine"], result["git"]
    if git["commit"]:
        code = f"m2dino at commit `{git['commit'][:10]}`" + (" with uncommitted changes" if git["dirty"] else "")
    else:
        code = f"m2dino from an exported copy at `{git['source']}` (not a git work tree; see the notes)"
    lines = ["# Ultrasound self-supervised pretraining against random init (issue 12, item 3)", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {m['cpu']}, {m['cores']} CPU cores, no GPU; Python {m['python']}, torch {m['torch']}; {code}.",
             ""]
    lines += ["## Pretraining", "",
              f"`{pre['command']}`", "", f"This run: {pre['status']}.", "",
              (f"Data: the **train** split of the public root `{s['root']}` (8 real datasets; its val and test "
               f"images passed as `--held-out`, none overlap): {pool['files']:,} image files, the pool the recipe "
               f"samples from, holding {pool['distinct']:,} distinct images (by bytes). An FMC root keeps one copy "
               "of an image in each task folder that labels it, and the recipe counts distinct files, so the "
               f"images of {', '.join(repeated) or 'no dataset'} are sampled more often than the others."), "",
              "| dataset | image files | distinct images | files per image |", "|---|---:|---:|---:|"]
    lines += [f"| {d} | {c['files']:,} | {c['distinct']:,} | {c['files'] / c['distinct']:.2f} |"
              for d, c in pool["per_dataset"].items()]
    if wall:
        lines += ["", (f"Wall time (the log's `time` fields, step {wall['first_step']} to {wall['last_step']}): "
                       f"**{wall['seconds'] / 60:.1f} min** ({wall['per_step_s']:.2f} s a step; "
                       f"≈ {wall['estimated_s'] / 60:.1f} min for all {wall['last_step']} steps) on 2 CPU cores. "
                       "Final logged losses: "
                       + ", ".join(f"{k} {v:.3f}" for k, v in wall["final_losses"].items())
                       + f"; log lines flagging a collapsed teacher: {wall['collapse_records']}.")]
        if wall.get("loss_trend"):
            trend = wall["loss_trend"]
            start = next(iter(trend.values()))["from_step"]
            lines += ["", (f"Losses after the warm-ups (mean of the first 5 logged steps from step {start} → mean of "
                           "the last 5): "
                           + ", ".join(f"{k} {v['early']:.3f} → {v['late']:.3f}" for k, v in trend.items())
                           + (f"; ln({pre['prototypes']}) = {math.log(pre['prototypes']):.3f}, the DINO loss of a "
                              "uniform student prediction." if pre.get("prototypes") else "."))]
    lines += ["", "## Downstream protocol", "",
              (f"Backbone `mini` (ViT, 4 blocks, width 128, patch 16) at {s['image_size']} px. **Random init** = "
               "`--pretrained none`: the backbone is drawn after `torch.manual_seed(seed)`, so each seed is another "
               "random backbone (seed 0 is the pretraining run's own starting point). **Pretrained** = the backbone "
               "above. Both sides get the same steps, flags and "
               "seeds; a seed also fixes the data order (and the probe subset / the 10 % label subset), so "
               "seed s of both inits sees the same data."), "",
              (f"- (a) frozen backbone + linear probe, seeds {s['probe_seeds']}: pooled features [CLS ‖ mean patch "
               f"token] (256-d) of every image; scikit-learn `LogisticRegression` on standardised features, fitted "
               f"on a stratified {s['probe_train_fraction']:.0%} of the train split drawn by the seed, C ∈ "
               f"{s['probe_cs']} chosen by accuracy on the val split, scored on the test split (accuracy, macro "
               "F1). African planes: 4 planes, test patients disjoint from train; POCUS lung 3-class: split by "
               "video."),
              (f"- (b) frozen backbone + segmentation head (the DPT head of the unified recipe, "
               f"`--freeze-backbone --moe-blocks ''`), {s['frozen_steps']} steps of batch 16, seeds {s['seeds']}; "
               f"DSC of the final model on the {s['eval_split']} split (mean over foreground classes, the scorer's "
               "DSC; PSFHS has two: pubic symphysis and fetal head)."),
              (f"- (c) full fine-tuning (backbone lr 1e-3, heads 2e-3, the recipe's defaults) on 10 % of HC18's "
               f"training labels (`--data-fraction 0.1`: 79 images, drawn by the seed), {s['finetune_steps']} "
               f"steps of batch 16, seeds {s['seeds']}; DSC on the {s['eval_split']} split."),
              ("- Each recipe run: 1 torch thread, 0 data workers, training images resized once into a shared "
               f"cache; runs at a time: {s['jobs']}."), "",
              f"The difference is pretrained − random; {GAP_RULE}.", "",
              "## Results", ""]
    lines += table(result["rows"])
    lines += ["", "Per seed (in seed order):", ""] + per_seed_lines(result["rows"])
    seconds = result.get("run_seconds") or {}
    if seconds:
        lines += ["", "Downstream wall time per run (mean over its runs): "
                  + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()) + "."]
    if result.get("pca"):
        p = result["pca"]
        lines += ["", "## Patch features", "",
                  (f"![PCA of patch features, random init against pretrained]({p['file']})"), "",
                  (f"The first three principal components of the final patch tokens as RGB at {p['image_size']} px "
                   f"({p['image_size'] // 16}×{p['image_size'] // 16} patches; the backbone was pretrained on "
                   f"128-px global crops), fitted per backbone on the non-black patches of all {len(p['scans'])} "
                   "scans together. Random init = seed 0, which is also where the pretraining run (`--seed 0`) "
                   "started, so the two columns are the same backbone before and after pretraining. Scans: "
                   + "; ".join(f"{label} (`{file_name(f)}`)" for label, f in p["scans"]) + ".")]
    lines += ["", "## Reading", ""] + reading(result)
    lines += ["", "## What these numbers do not show", ""] + [f"- {n}" for n in result["notes"]]
    if result["missing"]:
        lines += ["", "## Not measured in this run", ""] + [f"- {n}" for n in result["missing"]]
    return "\n".join(lines) + "\n"


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
