"""Small data is not slower than before lazy loading: HC18 training, whole process, today's default
path against the eager path of commit 55763b7 (the commit before lazy loading, which decoded the
whole dataset up front and trained with 0 workers).

Each run is a fresh ``python recipes/unified.py --data hc18:ROOT`` process with the same flags (the
old commit checked out by ``git worktree add`` into a temporary folder, run with this environment's
Python and that folder first on ``PYTHONPATH``), timed from start to exit: wall clock, and the CPU
time (user + system) of the process and every process it waited for (DataLoader workers, decode
pools), from ``resource.getrusage(RUSAGE_CHILDREN)`` of a small wrapper process. Runs come in
interleaved pairs whose order alternates, and the figure is each pair's ratio today / old.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs COMMAND and prints the resources of everything it waited for (the wrapper itself does nothing).
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:]).returncode
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"returncode": code, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "max_rss_mb": usage.ru_maxrss / 1024}))
"""


def training_command(hc18_root: Path, steps: int, image_size: int, output_dir: Path, seed: int = 0,
                     extra: Sequence[str] = ()) -> list[str]:
    """The flags both commits accept: everything but the data path is fixed explicitly, so the two
    runs train the same model the same way (``extra``: flags only today's commit knows)."""
    return [sys.executable, "recipes/unified.py", "--data", f"hc18:{hc18_root}", "--image-size", str(image_size),
            "--steps", str(steps), "--batch-size", "16", "--backbone", "mini", "--moe-blocks", "2,3",
            "--eval-every", str(10 * steps), "--mixed-precision", "no", "--seed", str(seed),
            "--output-dir", str(output_dir), "--no-progress", *extra]


def timed_run(checkout: Path, command: list[str]) -> dict:
    """Wall and CPU seconds and peak RSS of ``command`` run in ``checkout`` (its m2dino first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], cwd=checkout, env=env, capture_output=True,
                          text=True)
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {"returncode": done.returncode}
    if result["returncode"] != 0:
        raise RuntimeError(f"{' '.join(command)} in {checkout} failed ({result['returncode']}):\n{done.stderr[-3000:]}")
    return result


def small_data_paired(hc18_root: Path, old_commit: str = "55763b7", runs: int = 3, steps: int = 100,
                      image_size: int = 128) -> list[dict]:
    """``runs`` interleaved pairs (today, old) of HC18 training; one row per pair with both runs'
    wall/CPU seconds and peak RSS, and the ratios today / old."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="m2dino-small-data-") as work:
        old = Path(work) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), old_commit], check=True,
                       capture_output=True)
        try:
            for pair in range(runs):
                measured = {}
                order = ("today", "old") if pair % 2 == 0 else ("old", "today")
                for side in order:
                    output = Path(work) / f"run-{pair}-{side}"
                    measured[side] = timed_run(REPO if side == "today" else old,
                                               training_command(Path(hc18_root).resolve(), steps, image_size, output))
                rows.append({"pair": pair, "first": order[0], "today": measured["today"], "old": measured["old"],
                             "wall_ratio": measured["today"]["wall_s"] / measured["old"]["wall_s"],
                             "cpu_ratio": measured["today"]["cpu_s"] / measured["old"]["cpu_s"]})
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False,
                           capture_output=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Median ratios over the pairs (today / old; below 1 is today faster)."""
    return {"pairs": len(rows), "wall_ratio": statistics.median(r["wall_ratio"] for r in rows),
            "cpu_ratio": statistics.median(r["cpu_ratio"] for r in rows),
            "max_rss_ratio": statistics.median(r["today"]["max_rss_mb"] / r["old"]["max_rss_mb"] for r in rows)}
