"""The paired-timing method on a fake clock: ratios, interleaving order, re-runs of disturbed pairs."""

import os

import pytest

from harness.timing import CpuShareProbe, PairedTimer, summary, timed_calls


class FakeClock:
    """A clock that only moves when a workload says so: every timed figure is known exactly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeProbe:
    """Reports the given interference shares, one per timed pair attempt."""

    def __init__(self, shares: list[float]) -> None:
        self.shares = list(shares)

    def sample(self) -> None:
        return None

    def share(self, before, after, seconds: float) -> float:
        return self.shares.pop(0)


def workload(clock: FakeClock, log: list[str], name: str, seconds) -> callable:
    """A function that takes ``seconds`` (a number, or a list consumed call by call) and logs its name."""
    durations = seconds if isinstance(seconds, list) else None

    def call() -> None:
        log.append(name)
        clock.now += durations.pop(0) if durations is not None else seconds
    return call


def quiet_timer(clock: FakeClock, **kwargs) -> PairedTimer:
    return PairedTimer(clock=clock, probe=FakeProbe([0.0] * 1000), **kwargs)


def test_ratios_and_differences_are_per_pair():
    clock, log = FakeClock(), []
    timer = quiet_timer(clock, warmup=0)
    ref = workload(clock, log, "R", [2.0, 1.0, 4.0])
    result = timer.compare(ref, {"a": workload(clock, log, "a", [3.0, 2.0, 4.0])}, rounds=3)["a"]
    assert result["reference_s"] == [2.0, 1.0, 4.0] and result["variant_s"] == [3.0, 2.0, 4.0]
    # within-pair ratios 1.5, 2, 1 -> median 1.5; the ratio of medians (3 / 2) would hide the pairing
    assert result["ratio"] == {"median": 1.5, "min": 1.0, "max": 2.0, "values": [1.5, 2.0, 1.0]}
    assert result["difference_s"]["values"] == [1.0, 1.0, 0.0]
    assert result["interference"] == [0.0, 0.0, 0.0]


def test_order_is_rotated_and_alternated_after_warmup():
    clock, log = FakeClock(), []
    timer = quiet_timer(clock, warmup=1)
    timer.compare(workload(clock, log, "R", 1.0), {"a": workload(clock, log, "a", 1.0),
                                                   "b": workload(clock, log, "b", 1.0)}, rounds=2)
    warmup, pairs = log[:3], [log[i:i + 2] for i in range(3, len(log), 2)]
    assert warmup == ["R", "a", "b"]
    # round 0: a then b, reference first in the first pair; round 1 starts with b, and the side that
    # runs first alternates from pair to pair
    assert pairs == [["R", "a"], ["b", "R"], ["b", "R"], ["R", "a"]]


def test_inner_calls_are_averaged_between_synchronisations():
    clock, log, syncs = FakeClock(), [], []
    timer = PairedTimer(inner=4, warmup=0, clock=clock, probe=FakeProbe([0.0]), sync=lambda: syncs.append(1))
    out = timer.compare(workload(clock, log, "R", 0.5), {"a": workload(clock, log, "a", 1.0)}, rounds=1,
                        inner=2)["a"]
    assert out["reference_s"] == [0.5] and out["ratio"]["median"] == 2.0
    assert log == ["R", "R", "a", "a"]           # the per-call inner wins over the timer's
    assert timer.time_call(workload(clock, log, "x", 0.25)) == 0.25 and log[-4:] == ["x"] * 4
    assert len(syncs) == 1 + 2 * 2 + 2           # after warmup, around each sample


def test_disturbed_pair_is_rerun_and_the_least_disturbed_kept():
    clock, log = FakeClock(), []
    # pair 1: disturbed (0.5) then quiet (0.1): re-run once, the quiet attempt kept;
    # pair 2: disturbed three times: the least disturbed (0.3) kept although still over the limit
    timer = PairedTimer(warmup=0, limit=0.15, retries=2, clock=clock, probe=FakeProbe([0.5, 0.1, 0.9, 0.3, 0.6]))
    ref = workload(clock, log, "R", [1.0, 1.0, 1.0, 1.0, 1.0])
    var = workload(clock, log, "a", [9.0, 2.0, 7.0, 3.0, 8.0])
    out = timer.compare(ref, {"a": var}, rounds=2)["a"]
    assert out["variant_s"] == [2.0, 3.0] and out["interference"] == [0.1, 0.3]
    assert timer.record() == {"pairs": 2, "rerun": 2, "kept_disturbed": 1, "limit": 0.15, "retries": 2}


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="inner must be ≥ 1"):
        PairedTimer(inner=0)
    with pytest.raises(ValueError, match="at least one variant"):
        PairedTimer().compare(lambda: None, {}, rounds=1)


def test_cpu_share_probe_counts_only_other_processes():
    probe = CpuShareProbe()
    ticks = os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
    # the machine was busy for ticks/2 clock ticks, of which ticks/4 were ours: others used a quarter
    assert probe.share((0, 0), (ticks // 2, ticks // 4), 1.0) == pytest.approx((ticks // 2 - ticks // 4) / ticks)
    assert probe.share((0, 10), (5, 10), 1.0) == pytest.approx(5 / ticks)
    assert probe.share((100, 0), (100, 50), 1.0) == 0.0     # our own time is never "others" (clamped)
    assert probe.share(None, (1, 1), 1.0) == 0.0             # no /proc: no interference known


def test_timed_calls_counts_only_the_calls():
    clock = FakeClock()

    def arguments():
        for n in (1, 2, 3):
            clock.now += 100.0                   # making the arguments is not timed
            yield (n,)

    def square(n: int) -> int:
        clock.now += n
        return n * n
    total, results = timed_calls(arguments(), square, clock=clock)
    assert total == 6.0 and results == [1, 4, 9]


def test_summary():
    assert summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [3.0, 1.0, 2.0]}
