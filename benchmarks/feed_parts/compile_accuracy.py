"""Does ``--compile`` change what a run learns? (issue 25, item 3: "check on a short real run that
accuracy does not drop".) HC18 at 128 px, the unified recipe (``mini``, MoE blocks 2-3), the same seed
eager and compiled, each a fresh process on one thread: the final model's score per task on the held-out
split (the recipe's own validation: HC18's patient-level val split) and their mean, and the wall time.

Compiled and eager runs share the data order and initialisation (the seed); what may differ is the
floating-point order inside fused kernels, which compounds over the steps. The table shows that
difference per seed beside the seed-to-seed spread of the eager runs, which is the scale to read it on.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from feed_parts.small_data import REPO, timed_run, training_command


def run_scores(output_dir: Path) -> dict[str, float]:
    """Task -> normalised score of the final model (the run's summary.json)."""
    return {row["task"]: row["score"] for row in json.loads((output_dir / "summary.json").read_text())}


def compile_accuracy(hc18_root: Path, seeds: tuple[int, ...] = (0, 1), steps: int = 1500,
                     image_size: int = 128) -> list[dict]:
    """One row per seed: both runs' per-task scores, mean score and wall seconds, and compiled − eager."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="m2dino-compile-accuracy-") as work:
        for seed in seeds:
            runs = {}
            for variant, extra in (("eager", ["--threads", "1"]), ("compiled", ["--threads", "1", "--compile"])):
                output = Path(work) / f"seed{seed}-{variant}"
                timed = timed_run(REPO, training_command(Path(hc18_root).resolve(), steps, image_size, output, seed,
                                                         extra))
                scores = run_scores(output)
                runs[variant] = {"scores": scores, "mean": statistics.mean(scores.values()),
                                 "wall_s": timed["wall_s"]}
            rows.append({"seed": seed, "steps": steps, **runs,
                         "difference": runs["compiled"]["mean"] - runs["eager"]["mean"]})
    return rows


def summarise(rows: list[dict]) -> dict:
    """The mean compiled − eager difference and the eager runs' seed-to-seed SD (0 with one seed)."""
    eager = [r["eager"]["mean"] for r in rows]
    return {"seeds": len(rows), "mean_difference": statistics.mean(r["difference"] for r in rows),
            "eager_seed_sd": statistics.stdev(eager) if len(eager) > 1 else 0.0}
