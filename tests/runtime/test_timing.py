"""Tests for tvmdeploy.runtime.timing with a fake clock (no wall-clock thresholds)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.timing import LatencyStats, blocked, interleaved, measure


class FakeClock:
    """A clock that only moves when a fake workload says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def __call__(self) -> float:
        return self.now

    def work(self, name: str, seconds: float) -> Callable[[], None]:
        def fn() -> None:
            self.log.append(name)
            self.now += seconds

        return fn


def test_stats_on_known_samples() -> None:
    s = LatencyStats.from_samples([float(x) for x in range(10, 0, -1)])  # 10..1, order must not matter
    assert s.n == 10
    assert s.median_ms == pytest.approx(5.5)
    assert s.p10_ms == pytest.approx(1.9)  # linear interpolation between order statistics
    assert s.p90_ms == pytest.approx(9.1)
    assert s.mean_ms == pytest.approx(5.5)
    assert (s.min_ms, s.max_ms) == (1.0, 10.0)
    assert s.std_ms == pytest.approx(np.std(np.arange(1, 11)))
    assert s.samples_ms[0] == 10.0  # raw samples kept in run order
    assert "median 5.500 ms" in s.summary()
    d = s.to_dict()
    assert d["median_ms"] == pytest.approx(5.5) and "samples_ms" not in d
    assert len(s.to_dict(include_samples=True)["samples_ms"]) == 10  # type: ignore[arg-type]


def test_stats_single_sample_and_ordering_invariants() -> None:
    one = LatencyStats.from_samples([3.0])
    assert one.median_ms == one.p10_ms == one.p90_ms == one.min_ms == one.mean_ms == 3.0
    rng = np.random.default_rng(0)
    s = LatencyStats.from_samples(rng.lognormal(0, 1, 501).tolist())
    assert s.min_ms <= s.p10_ms <= s.median_ms <= s.p90_ms <= s.max_ms


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, -0.5], [[1.0, 2.0]]])
def test_stats_reject_bad_samples(bad: list) -> None:
    with pytest.raises(TvmDeployError):
        LatencyStats.from_samples(bad)


def test_measure_warms_up_untimed_then_stops_at_min_runs() -> None:
    clock = FakeClock()
    stats = measure(clock.work("a", 0.002), warmup=3, min_runs=20, min_seconds=0.01, clock=clock)
    assert len(clock.log) == 3 + 20  # 20 runs x 2 ms = 40 ms already exceeds min_seconds
    assert stats.n == 20
    assert stats.median_ms == pytest.approx(2.0) and stats.min_ms == pytest.approx(2.0)


def test_measure_keeps_going_until_min_seconds() -> None:
    clock = FakeClock()
    stats = measure(clock.work("a", 2.0**-6), warmup=0, min_runs=5, min_seconds=1.0, clock=clock)
    assert stats.n == 64  # 64 x 1/64 s = 1 s (power of two: exact float sums)
    assert stats.mean_ms == pytest.approx(1000 / 64)


def test_measure_is_capped_by_max_runs() -> None:
    clock = FakeClock()
    stats = measure(clock.work("a", 0.001), warmup=0, min_runs=5, min_seconds=100.0, max_runs=37, clock=clock)
    assert stats.n == 37


def test_measure_with_real_clock_runs_exactly_min_runs_when_min_seconds_is_zero() -> None:
    calls = []
    stats = measure(lambda: calls.append(1), warmup=2, min_runs=7, min_seconds=0.0)
    assert stats.n == 7 and len(calls) == 9
    assert stats.min_ms >= 0.0


def test_interleaved_alternates_and_gives_equal_runs() -> None:
    clock = FakeClock()
    fns = {"tvm": clock.work("A", 0.001), "ort": clock.work("B", 0.003)}
    result = interleaved(fns, warmup=2, min_runs=4, min_seconds=0.0, clock=clock)
    assert clock.log == ["A", "B"] * (2 + 4)  # warm-up alternates too
    assert list(result) == ["tvm", "ort"]
    assert result["tvm"].n == result["ort"].n == 4
    assert result["tvm"].median_ms == pytest.approx(1.0)
    assert result["ort"].median_ms == pytest.approx(3.0)


def test_interleaved_min_seconds_applies_to_each_competitor() -> None:
    clock = FakeClock()
    # Power-of-two durations keep the fake clock's float sums exact.
    fns = {"fast": clock.work("A", 2.0**-10), "slow": clock.work("B", 0.125)}
    result = interleaved(fns, warmup=0, min_runs=1, min_seconds=0.5, clock=clock)
    # The fast one needs 512 runs to accumulate 0.5 s of its own time; both get the same count.
    assert result["fast"].n == result["slow"].n == 512


def test_interleaved_sees_drift_evenly() -> None:
    # A machine that slows down steadily: alternating gives both competitors the same drift.
    clock = FakeClock()
    state = {"k": 0}

    def drifting(name: str) -> Callable[[], None]:
        def fn() -> None:
            state["k"] += 1
            clock.log.append(name)
            clock.now += 0.001 * (1 + state["k"] / 100)

        return fn

    r = interleaved({"a": drifting("a"), "b": drifting("b")}, warmup=0, min_runs=200, min_seconds=0.0, clock=clock)
    assert abs(r["a"].median_ms - r["b"].median_ms) < 0.02 * r["a"].median_ms


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"warmup": -1}, "warmup"),
        ({"min_runs": 0}, "min_runs"),
        ({"min_runs": 10, "max_runs": 5}, "max_runs"),
        ({"min_seconds": -1.0}, "min_seconds"),
        ({"min_seconds": float("inf")}, "min_seconds"),
        ({"warmup": 1.5}, "warmup"),
    ],
)
def test_budget_validation(kwargs: dict, needle: str) -> None:
    with pytest.raises(TvmDeployError, match=needle):
        measure(lambda: None, **kwargs)


def test_interleaved_rejects_empty_and_non_callable() -> None:
    with pytest.raises(TvmDeployError, match="nothing to measure"):
        interleaved({})
    with pytest.raises(TvmDeployError, match="not callable"):
        interleaved({"x": 3})  # type: ignore[dict-item]


def test_blocked_alternates_whole_blocks_with_warmups():
    calls = []
    now = [0.0]

    def fn(name, cost):
        def call():
            calls.append(name)
            now[0] += cost

        return call

    stats = blocked({"a": fn("a", 0.001), "b": fn("b", 0.003)}, warmup=3, min_runs=6, min_seconds=0, clock=lambda: now[0])
    # 3 rounds; each block: 2 warm-ups + 2 timed runs
    assert calls == (["a"] * 4 + ["b"] * 4) * 3
    assert stats["a"].n == 6 and stats["a"].median_ms == pytest.approx(1.0)
    assert stats["b"].median_ms == pytest.approx(3.0)
