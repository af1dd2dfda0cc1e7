"""Paired, interleaved timing: the measurement method the speed benchmarks share.

A shared machine's speed drifts by tens of per cent from one second to the next, so two times taken
minutes apart cannot be compared. Instead each variant is timed right next to its reference, pair
after pair: within a round the variants come in rotated order and each pair alternates which side
runs first, and a figure is the **median of the within-pair ratios** (variant / reference). A pair
during which other processes used more than ``limit`` of the machine's CPU time is run again, up to
``retries`` times, keeping the least disturbed. Timing an identical copy of the reference as one
more variant (an A/A control) measures the noise floor of a table.

Torch-free: a device synchronisation (e.g. `torch.cuda.synchronize`) is passed in as ``sync``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

INTERFERENCE_LIMIT = 0.15
RETRIES = 2


def summary(values: list[float]) -> dict:
    """Median, range and all values: the JSON form of every measured series."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


class LoadProbe(Protocol):
    """Measures how much of the machine other processes used between two samples."""

    def sample(self) -> Any: ...

    def share(self, before: Any, after: Any, seconds: float) -> float: ...


class CpuShareProbe:
    """Other processes' share of the machine's CPU time, from /proc/stat and /proc/self/stat
    (0 = we had the machine to ourselves, 1 = others used every core all the time)."""

    def sample(self) -> tuple[int, int] | None:
        """(busy clock ticks of the whole machine, clock ticks of this process), or None without /proc."""
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        busy = sum(fields[:8]) - fields[3] - fields[4]          # all but idle and iowait
        return busy, int(own[11]) + int(own[12])                 # utime + stime of every thread of ours

    def share(self, before: tuple[int, int] | None, after: tuple[int, int] | None, seconds: float) -> float:
        if before is None or after is None or seconds <= 0:
            return 0.0
        others = (after[0] - before[0]) - (after[1] - before[1])
        return max(0.0, others / (os.sysconf("SC_CLK_TCK") * seconds * (os.cpu_count() or 1)))


@dataclass
class PairCounts:
    """How many pairs were timed, re-run because of interference, and kept although still disturbed."""

    pairs: int = 0
    rerun: int = 0
    kept_disturbed: int = 0


class PairedTimer:
    """Times variants against a reference, pair by pair (see the module docstring).

    ``inner`` calls make one timed sample (GPU: several, on a synchronised clock); every function is
    called ``warmup`` times before the first pair. ``clock`` and ``probe`` are injectable so that the
    method can be tested without a real workload.
    """

    def __init__(self, inner: int = 1, warmup: int = 1, sync: Callable[[], None] | None = None,
                 limit: float = INTERFERENCE_LIMIT, retries: int = RETRIES,
                 clock: Callable[[], float] = time.perf_counter, probe: LoadProbe | None = None) -> None:
        if inner < 1 or warmup < 0 or retries < 0:
            raise ValueError(f"PairedTimer: inner must be ≥ 1 and warmup, retries ≥ 0; got inner={inner}, "
                             f"warmup={warmup}, retries={retries}")
        self.inner, self.warmup, self.limit, self.retries = inner, warmup, limit, retries
        self.sync = sync or (lambda: None)
        self.clock = clock
        self.probe = probe or CpuShareProbe()
        self.counts = PairCounts()

    def time_call(self, fn: Callable[[], object], inner: int | None = None) -> float:
        """Seconds per call of ``fn``, averaged over ``inner`` calls between two synchronisations."""
        inner = inner or self.inner
        self.sync()
        start = self.clock()
        for _ in range(inner):
            fn()
        self.sync()
        return (self.clock() - start) / inner

    def compare(self, reference: Callable[[], object], variants: dict[str, Callable[[], object]], rounds: int,
                inner: int | None = None) -> dict[str, dict]:
        """Per variant: the within-pair ratios (variant / reference) and differences (seconds) as
        `summary` dicts, both sides' times and the other processes' share of the machine in each kept pair."""
        if not variants or rounds < 1:
            raise ValueError(f"PairedTimer.compare: need at least one variant and one round; got "
                             f"{len(variants)} variants, {rounds} rounds")
        for fn in (reference, *variants.values()):
            for _ in range(self.warmup):
                fn()
        self.sync()
        names = list(variants)
        raw = {n: {"variant": [], "reference": [], "interference": []} for n in names}
        for r in range(rounds):
            shift = r % len(names)
            for i, name in enumerate(names[shift:] + names[:shift]):
                ref, var, share = self._pair(reference, variants[name], reference_first=(r + i) % 2 == 0,
                                             inner=inner)
                raw[name]["reference"].append(ref)
                raw[name]["variant"].append(var)
                raw[name]["interference"].append(share)
        return {n: {"ratio": summary([v / r for v, r in zip(t["variant"], t["reference"])]),
                    "difference_s": summary([v - r for v, r in zip(t["variant"], t["reference"])]),
                    "variant_s": t["variant"], "reference_s": t["reference"], "interference": t["interference"]}
                for n, t in raw.items()}

    def _pair(self, reference: Callable[[], object], variant: Callable[[], object], reference_first: bool,
              inner: int | None) -> tuple[float, float, float]:
        """(reference s, variant s, interference) of the least disturbed of up to 1 + retries attempts."""
        best = None
        for attempt in range(self.retries + 1):
            before, start = self.probe.sample(), self.clock()
            if reference_first:
                ref = self.time_call(reference, inner)
                var = self.time_call(variant, inner)
            else:
                var = self.time_call(variant, inner)
                ref = self.time_call(reference, inner)
            share = self.probe.share(before, self.probe.sample(), self.clock() - start)
            if best is None or share < best[2]:
                best = (ref, var, share)
            if share <= self.limit:
                break
        self.counts.pairs += 1
        self.counts.rerun += attempt > 0
        self.counts.kept_disturbed += best[2] > self.limit
        return best

    def record(self) -> dict:
        """The JSON record of this timer's pairs (rendered in each report's method paragraph)."""
        return {"pairs": self.counts.pairs, "rerun": self.counts.rerun,
                "kept_disturbed": self.counts.kept_disturbed, "limit": self.limit, "retries": self.retries}


def timed_calls(arguments: Iterable[tuple], fn: Callable[..., Any],
                clock: Callable[[], float] = time.perf_counter) -> tuple[float, list]:
    """Total seconds spent inside ``fn(*args)`` over ``arguments`` (the time to make the arguments is not
    counted), and the results in order. For workloads that are timed once rather than paired."""
    total, results = 0.0, []
    for args in arguments:
        start = clock()
        results.append(fn(*args))
        total += clock() - start
    return total, results
