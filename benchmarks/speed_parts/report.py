"""The speed report: markdown rendered from the result JSON alone (so `--rerender` reproduces it)."""

from __future__ import annotations

from statistics import median

from harness.report import fmt_ms, fmt_ratio, mark

from .plan import BALANCE_WEIGHT, PLACEMENTS, placement_blocks, predicted_model_ratio


def targets(result: dict) -> list[str]:
    """One line per target: met or missed, and by how much (medians; ranges are in the tables)."""
    out = []
    for r in result["backbone"]:
        for step in ("forward", "train"):
            whole, implied = r["whole"][step]["ratio"], r["implied"][step]
            verdict = "met" if implied <= 1.05 else "missed"
            out.append(f"- Backbone ≤ 1.05× timm, {r['size']} {r['precision']} {step}: {verdict} — implied by the "
                       f"measured differences {implied:.4f}; whole-backbone ratio {fmt_ratio(whole)}"
                       + (" (above 1.05, within this machine's noise: see the range)" if whole["median"] > 1.05
                          else "") + ".")
    for cell in result["moe_model"]:
        rows = [(f"E{c['experts']} {c['placement']} {c['batch']} {step}", c[step]["ratio"])
                for c in cell["cells"] if c["top_k"] == 1 for step in ("forward", "train")]
        if rows:
            missed = [f"{name} {fmt_ratio(r)}" for name, r in rows if r["median"] > 1.10]
            worst = max(rows, key=lambda row: row[1]["median"])
            out.append(f"- MoE, task routing, k = 1 ≤ 1.10× dense — whole backbone measured, {cell['size']} "
                       f"{cell['precision']}: met in {len(rows) - len(missed)} of {len(rows)} cells (worst: {worst[0]} "
                       f"{fmt_ratio(worst[1])})" + (f"; missed: {'; '.join(missed)}" if missed else "") + ".")
    for cell in result["moe_block"]:
        if cell.get("threads") == 1:
            continue
        rows = []
        for c in cell["cells"]:
            if c["top_k"] == 1:
                for step in ("forward", "train"):
                    for p in PLACEMENTS:
                        v = predicted_model_ratio(c[step]["ratio"]["median"], len(placement_blocks(p, cell["depth"])),
                                                  cell["depth"])
                        rows.append((f"E{c['experts']} {p} {c['batch']} {step}", v))
        if rows:
            missed = [f"{name} {v:.3f} (+{100 * (v - 1.10):.1f} points)" for name, v in rows if v > 1.10]
            out.append(f"- MoE, task routing, k = 1 ≤ 1.10× dense — predicted from the block, {cell['size']} "
                       f"{cell['precision']}: met in {len(rows) - len(missed)} of {len(rows)} cells"
                       + (f"; missed: {'; '.join(missed)}" if missed else "") + ".")
    for r in result["all_tasks"]:
        out.append(f"- All tasks within 10 % of the bound, {r['size']} {r['precision']}: backbone at "
                   f"{r['backbone_vs_bound']:.2f}× its bound, whole model at {r['full_vs_bound']:.2f}× → "
                   f"{'met' if max(r['backbone_vs_bound'], r['full_vs_bound']) <= 1.10 else 'missed'}.")
    if not result["throughput"]:
        out.append("- GPU tables, throughput and MFU: not measured (no GPU in this session).")
    return out


def markdown(result: dict) -> str:
    plan, m = result["plan"], result["machine"]
    gpu = m["device"] == "cuda"
    batch = plan["batch"]
    lines = [f"# Speed: backbone vs timm, MoE overhead, all tasks at once ({'GPU' if gpu else 'CPU'})", "",
             f"- Command: `{result['command']}`",
             f"- Machine: {m['cpu']}" + (f", GPU {m['gpu']}" if gpu else "") + f"; {m['cpus']} CPU cores shared "
             f"with other people's jobs (load average {result['load_start']:.1f} at the start, "
             f"{result['load_end']:.1f} at the end); torch threads: {m['threads']}",
             f"- torch {m['torch']}, timm {m['timm']}, Python {m['python']}; {result['date']}; run time "
             f"{result['wall_s'] / 60:.1f} min",
             f"- Backbone `{plan['backbone']}`, batch {batch} (part 3: one image), random weights and inputs; "
             "fp32, or bf16 autocast (`torch.autocast`).",
             "- Every ratio is measured side by side: each variant is timed right next to its reference, pair "
             "after pair (rotated, and alternating which side runs first), and the figure is the **median of the "
             "within-pair ratios**, with their range in brackets. Below 1 = faster than the reference. "
             + (f"A pair during which other processes used more than {100 * result['pairs']['limit']:.0f} % of "
                f"the machine's CPU time (read from /proc/stat) was run again, up to {result['pairs']['retries']} "
                f"times, keeping the least disturbed: {result['pairs']['rerun']} of {result['pairs']['pairs']} "
                f"pairs were re-run and {result['pairs']['kept_disturbed']} kept although still disturbed. "
                if "pairs" in result else "")
             + ("" if gpu else "On this shared machine the same work can take 1× to 2.5× as long from one "
               "second to the next, so a single ratio of two multi-second runs is only good to tens of per cent; "
               "where a target needs better precision, the part of the work that differs is timed on its own, "
               "with many short pairs."), ""]
    if not gpu:
        lines += ["> **No GPU was available in this session**: every figure below is CPU. Part 4 (the bf16 tables "
                  "on a GPU, training images/s and model FLOP utilisation for ViT-S and ViT-B) was **not measured**; "
                  "run `python benchmarks/speed.py --device cuda` on a GPU to produce it.", ""]

    # 1
    if result["backbone"]:
        rounds = plan["backbone_rounds"]
        lines += ["## 1. Backbone vs timm (same weights)", "",
                  "m2dino's `DINOv3Backbone` (timm's modules, our block loop) against timm's `forward_features` "
                  "with the same weights (outputs identical: max abs difference shown). Training step = forward + "
                  "backward of the mean token + AdamW step. Target ≤ 1.05.", "",
                  f"**Whole backbone** ({rounds[0]} forward pairs, {rounds[1]} training-step pairs):", "",
                  "| size | precision | forward: m2dino / timm | train step: m2dino / timm | timm forward (s) | "
                  "timm train step (s) | train img/s | GFLOP/s (train) | max abs diff | load average |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["backbone"]:
            f, t = r["whole"]["forward"], r["whole"]["train"]
            t_train = median(t["reference_s"])
            lines.append(f"| {r['size']} | {r['precision']} | {fmt_ratio(f['ratio'])} | {fmt_ratio(t['ratio'])} | "
                         f"{median(f['reference_s']):.2f} | {t_train:.2f} | {batch / t_train:.2f} | "
                         f"{r['flops']['train'] / t_train / 1e9:.0f} | {r['max_abs_diff_fp32']:.1g} | "
                         f"{r.get('load', float('nan')):.1f} |")
        lines += ["", f"**The parts that differ, timed apart** ({plan['glue_rounds']} pairs each). The blocks are "
                  "the same modules on both sides; what differs is (a) the code around them — input check, patch "
                  "embedding, prefix tokens, RoPE table, final norm — timed on copies with no blocks on the real "
                  "input, and (b) our Python block loop against timm's, timed with all blocks on a one-patch image "
                  "(compute negligible; 1 thread on CPU, as Python overhead does not depend on it and tiny ops "
                  "on 2 threads measure the scheduler). m2dino − timm, in ms per call; the implied whole-backbone "
                  "ratio is (timm + Δa + Δb) / timm with timm's whole-backbone time from the table above:", "",
                  "| size | precision | step | Δ (a) no blocks, ms | Δ (b) block loop, ms | implied ratio | "
                  "target ≤ 1.05 |", "|---|---|---|---|---|---|---|"]
        for r in result["backbone"]:
            for step in ("forward", "train"):
                implied = r["implied"][step]
                lines.append(f"| {r['size']} | {r['precision']} | {step} | {fmt_ms(r['glue'][step]['difference_s'])} | "
                             f"{fmt_ms(r['loop'][step]['difference_s'])} | {implied:.4f} | {mark(implied <= 1.05)} |")
        lines.append("")

    # 2
    if result["moe_block"] or result["moe_model"]:
        rounds = plan["block_rounds"]
        lines += ["## 2. MoE overhead (task routing) against the dense model", "",
                  "**Per block** — the only place where the MoE model and the dense model differ. One dense block "
                  "against the same block with its MLP upcycled to a `TaskMoE` (E experts, top-k; outputs equal to "
                  "the dense block's at initialisation), on the same hidden states; forward, and training step "
                  f"(loss = mean of the outputs + {BALANCE_WEIGHT} × balancing loss, backward down to the block "
                  f"input, AdamW step). Single = {batch} images of one task (the fast path: the task's k experts "
                  f"run on the whole batch); mixed = {batch} images of {min(plan['mixed_tasks'], batch)} tasks, "
                  "chosen to use as many distinct experts as possible (the worst case for the grouped dispatch). "
                  "The whole-model columns follow from the block ratio r as 1 + (n / L)·(r − 1) for MoE in the "
                  "last 4 blocks (n = 4), every other block (n = 6: blocks 1, 3, …, 11) and all blocks (n = 12); "
                  "an upper bound, "
                  "as the embedding, final norm and loss count as zero. The A/A row times a second, identical dense "
                  f"model the same way (full-grid cells only): the noise floor. {rounds[0]} forward pairs, "
                  f"{rounds[1]} training-step pairs per row. Target for k = 1: ≤ 1.10.", ""]
        for cell in result["moe_block"]:
            depth = cell["depth"]
            one = cell.get("threads") == 1
            title = (f"### Per block, {cell['size']}×{cell['size']}, {cell['precision']} (load average "
                     f"{cell.get('load', float('nan')):.1f})")
            if one:
                title += (" — diagnostic: 1 thread (the work alone; with 2 threads on a loaded 2-core machine every "
                          "op also waits for both threads to be scheduled, which penalises the MoE's extra small ops)")
            lines += [title, "",
                      "| E | k | batch | experts run | step | block ratio | model: last 4 | model: every other "
                      "| model: all |", "|---|---|---|---|---|---|---|---|---|"]
            for step in ("forward", "train") if cell["control"] else ():
                lines.append(f"| — | — | A/A: dense vs dense | — | {step} | "
                             f"{fmt_ratio(cell['control'][step]['ratio'])} | | | |")
            for c in cell["cells"]:
                for step in ("forward", "train"):
                    r = c[step]["ratio"]["median"]
                    preds = [predicted_model_ratio(r, len(placement_blocks(p, depth)), depth) for p in PLACEMENTS]
                    cols = [f"{p:.3f}" + (f" {mark(p <= 1.10)}" if c["top_k"] == 1 else "") for p in preds]
                    lines.append(f"| {c['experts']} | {c['top_k']} | {c['batch']} | {c['distinct_experts']:g} | "
                                 f"{step} | {fmt_ratio(c[step]['ratio'])} | " + " | ".join(cols) + " |")
            lines.append("")
        if result["moe_model"]:
            rounds = plan["model_rounds"]
            lines += ["### Whole backbone, measured directly", "",
                      f"Embedding + {result['moe_model'][0]['depth']} blocks + norm, the MoE model against the dense "
                      f"model ({rounds[0]} forward pairs, {rounds[1]} training-step pairs; multi-second calls, so "
                      "only good to the machine's noise; load average at the end "
                      f"{result['moe_model'][0].get('load', float('nan')):.1f}), next to the prediction from the "
                      "per-block table" + (" (A/A: a second, identical dense model timed the same way: the noise "
                                           "floor of these pairs)" if any("control" in c for c in result["moe_model"])
                                           else "") + ":", "",
                      "| size | precision | E | k | MoE blocks | batch | experts run / MoE block | forward: measured "
                      "| forward: predicted | train step: measured | train step: predicted |",
                      "|---|---|---|---|---|---|---|---|---|---|---|"]
            blocks = {(c["size"], c["precision"]): c for c in result["moe_block"] if c.get("threads") != 1}
            for cell in result["moe_model"]:
                if "control" in cell:
                    lines.append(f"| {cell['size']} | {cell['precision']} | — | — | A/A: dense vs dense | — | — | "
                                 f"{fmt_ratio(cell['control']['forward']['ratio'])} | — | "
                                 f"{fmt_ratio(cell['control']['train']['ratio'])} | — |")
                for c in cell["cells"]:
                    cols = []
                    for step in ("forward", "train"):
                        pred = "—"
                        match = [b for b in blocks.get((cell["size"], cell["precision"]), {"cells": []})["cells"]
                                 if (b["experts"], b["top_k"], b["batch"]) == (c["experts"], c["top_k"], c["batch"])]
                        if match:
                            ratio = match[0][step]["ratio"]["median"]
                            pred = f"{predicted_model_ratio(ratio, len(c['moe_blocks']), cell['depth']):.3f}"
                        ok = f" {mark(c[step]['ratio']['median'] <= 1.10)}" if c["top_k"] == 1 else ""
                        cols += [fmt_ratio(c[step]["ratio"]) + ok, pred]
                    lines.append(f"| {cell['size']} | {cell['precision']} | {c['experts']} | {c['top_k']} | "
                                 f"{c['placement']} | {c['batch']} | {c['distinct_experts']:.1f} | " + " | ".join(cols)
                                 + " |")
            lines.append("")

    # 3
    if result["all_tasks"]:
        a0 = result["all_tasks"][0]
        moe = a0["moe"]
        lines += ["## 3. All tasks at once (`predict_all`) against one task", "",
                  f"One image; MoE E = {moe['experts']}, k = {moe['top_k']} in blocks {moe['moe_blocks']}, so "
                  f"L_shared = {a0['shared_blocks']} dense blocks run once and L_routed = "
                  f"{a0['depth'] - a0['shared_blocks']} blocks run on one copy of the hidden state per task; heads "
                  f"with decoder_features = {plan['decoder_features']}. `all` = "
                  f"`{a0.get('all_call', 'M2DINO._forward_all')}(x, all "
                  f"{a0['tasks']} tasks)` (what `predict_all` runs after loading the image); `one` = "
                  f"`model(x, task='{a0['single_task']}')` (a segmentation head, DPT decoder). The backbone "
                  "(with the 4 feature levels the dense heads read) and the heads (on precomputed features) are "
                  "also timed apart, each against one task's backbone timed next to it (all figures of the parts "
                  "are in units of one task's backbone). Bound for the backbone = (L_shared + 27·L_routed) / L = "
                  f"{a0['bound_blocks']:.2f}× one task's backbone; bound for the whole = (that + all heads) / (1 + "
                  f"one head). Target: within 10 % of the bound. {plan['all_rounds']} pairs for the whole, "
                  f"{plan['all_parts_rounds']} rounds for the parts.", "",
                  "| size | precision | part | one task (s) | all tasks (s) | all / one task's backbone | bound | "
                  "measured / bound |", "|---|---|---|---|---|---|---|---|"]
        for r in result["all_tasks"]:
            s = r["seconds"]
            p = r["parts"]
            lines.append(f"| {r['size']} | {r['precision']} | backbone | {s['single_backbone']:.3f} | "
                         f"{s['all_backbone']:.3f} | {fmt_ratio(p['all_backbone']['ratio'])} | "
                         f"{r['bound_blocks']:.2f} | "
                         f"{r['backbone_vs_bound']:.3f} {mark(r['backbone_vs_bound'] <= 1.10)} |")
            lines.append(f"| {r['size']} | {r['precision']} | heads | {s['single_head']:.3f} | {s['all_heads']:.3f} | "
                         f"one: {fmt_ratio(p['single_head']['ratio'])}; all: {fmt_ratio(p['all_heads']['ratio'])} "
                         "| — | — |")
            lines.append(f"| {r['size']} | {r['precision']} | **whole** | {s['single']:.3f} | {s['all']:.3f} | "
                         f"all / one task: {fmt_ratio(r['whole']['ratio'])} | {r['full_bound']:.2f} | "
                         f"{r['full_vs_bound']:.3f} {mark(r['full_vs_bound'] <= 1.10)} |")
        lines += ["", "| size | precision | heads' share, all tasks | head's share, one task | 27 separate "
                  "single-task calls, estimated (s) | all tasks (s) | outputs = single-task forwards (max abs diff) "
                  "| load average |", "|---|---|---|---|---|---|---|---|"]
        for r in result["all_tasks"]:
            lines.append(f"| {r['size']} | {r['precision']} | {100 * r['heads_share_all']:.0f} % | "
                         f"{100 * r['head_share_single']:.0f} % | {r['naive_singles_estimate']:.2f} | "
                         f"{r['seconds']['all']:.2f} | {r['max_abs_diff_all_vs_single']:.1g} "
                         f"({', '.join(r['checked_tasks'])}) | {r.get('load', float('nan')):.1f} |")
        lines.append("")

    # 4
    lines += ["## 4. GPU: training throughput and model FLOP utilisation", ""]
    if result["throughput"]:
        lines += [f"Training step (forward + backward + AdamW, bf16 autocast) of the backbone at "
                  f"{plan['throughput_size']}×{plan['throughput_size']}, batch {plan['throughput_batch']}; FLOPs of "
                  f"forward + backward counted by `FlopCounterMode` (matmuls, convolutions, attention); peak "
                  f"{result['peak']}.", "",
                  "| backbone | variant | images/s | TFLOP/s | MFU | MoE / dense time |", "|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "—"
            rel = fmt_ratio(r["moe_over_dense"]) if r["variant"] != "dense" else "—"
            lines.append(f"| {r['backbone']} | {r['variant']} | {r['images_per_s']:.0f} | {r['tflops_per_s']:.1f} | "
                         f"{mfu} | {rel} |")
        lines.append("")
    else:
        lines += ["Not measured: no GPU was lent to this session (the `device` tool offered none). The script "
                  "has the GPU path — `--device cuda`: the tables above in bf16 (20 calls per timed sample on a "
                  "CUDA-synchronised clock, the full E × k × placement grid also on the whole backbone), then "
                  "images/s and MFU of ViT-S and ViT-B training steps — to be run when a GPU is available.", ""]
    lines += ["## Targets", "", *targets(result), ""]
    if result.get("interpretation"):
        lines += ["## Interpretation and plan", "", result["interpretation"], ""]
    return "\n".join(lines)

