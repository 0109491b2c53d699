"""Wall-clock latency measurement and summary statistics for the benchmark verbs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tvmdeploy.runtime.errors import TvmDeployError

Clock = Callable[[], float]


@dataclass(frozen=True)
class LatencyStats:
    """Summary of latency samples, all in milliseconds; `samples_ms` keeps the raw data in run order."""

    n: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    std_ms: float
    samples_ms: tuple[float, ...]

    @classmethod
    def from_samples(cls, samples_ms: Sequence[float]) -> LatencyStats:
        """Build from per-run latencies in milliseconds (percentiles interpolate linearly, numpy's default)."""
        a = np.asarray(samples_ms, dtype=np.float64)
        if a.ndim != 1 or a.size == 0:
            raise TvmDeployError("latency statistics need at least one sample")
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise TvmDeployError("latency samples must be finite and non-negative")
        p10, p50, p90 = np.percentile(a, [10, 50, 90])
        return cls(
            n=int(a.size),
            median_ms=float(p50),
            p10_ms=float(p10),
            p90_ms=float(p90),
            mean_ms=float(a.mean()),
            min_ms=float(a.min()),
            max_ms=float(a.max()),
            std_ms=float(a.std()),
            samples_ms=tuple(float(x) for x in a),
        )

    def to_dict(self, include_samples: bool = False) -> dict[str, float | int | list[float]]:
        d: dict[str, float | int | list[float]] = {
            "n": self.n,
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "mean_ms": self.mean_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "std_ms": self.std_ms,
        }
        if include_samples:
            d["samples_ms"] = list(self.samples_ms)
        return d

    def summary(self) -> str:
        return (
            f"median {self.median_ms:.3f} ms (p10 {self.p10_ms:.3f}, p90 {self.p90_ms:.3f}), "
            f"mean {self.mean_ms:.3f}, min {self.min_ms:.3f}, n={self.n}"
        )


def _check_budget(warmup: int, min_runs: int, min_seconds: float, max_runs: int) -> None:
    for name, value in (("warmup", warmup), ("min_runs", min_runs), ("max_runs", max_runs)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TvmDeployError(f"{name} must be an integer, got {value!r}")
    if warmup < 0:
        raise TvmDeployError(f"warmup must be >= 0, got {warmup}")
    if min_runs < 1:
        raise TvmDeployError(f"min_runs must be >= 1, got {min_runs}")
    if max_runs < min_runs:
        raise TvmDeployError(f"max_runs ({max_runs}) must be >= min_runs ({min_runs})")
    if not (isinstance(min_seconds, (int, float)) and math.isfinite(min_seconds) and min_seconds >= 0):
        raise TvmDeployError(f"min_seconds must be a finite number >= 0, got {min_seconds!r}")


def measure(
    fn: Callable[[], object],
    *,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    max_runs: int = 10000,
    clock: Clock = time.perf_counter,
) -> LatencyStats:
    """Time `fn()` after `warmup` untimed calls until min_runs and min_seconds are both met (at most max_runs).

    `fn` must block until its work is done (e.g. synchronise a GPU device) or the numbers mean nothing.
    `clock` returns seconds; it is injectable so tests can use a fake clock instead of wall time.
    """
    stats = interleaved({"fn": fn}, warmup=warmup, min_runs=min_runs, min_seconds=min_seconds, max_runs=max_runs, clock=clock)
    return stats["fn"]


def interleaved(
    measure_fns: Mapping[str, Callable[[], object]],
    *,
    warmup: int = 10,
    min_runs: int = 50,
    min_seconds: float = 1.0,
    max_runs: int = 10000,
    clock: Clock = time.perf_counter,
) -> dict[str, LatencyStats]:
    """Time several competitors in rounds A, B, A, B, ... so each sees the same machine state.

    Measuring A fully and then B lets drift (thermal throttling, frequency scaling, a noisy
    neighbour) bias the comparison; alternating spreads it evenly. Every competitor gets the
    same number of runs; stopping needs min_runs rounds and min_seconds of each competitor's
    own timed time, or max_runs rounds. Warm-up calls alternate the same way.
    """
    if not measure_fns:
        raise TvmDeployError("nothing to measure: no functions given")
    for name, fn in measure_fns.items():
        if not callable(fn):
            raise TvmDeployError(f"competitor {name!r} is not callable")
    _check_budget(warmup, min_runs, min_seconds, max_runs)
    names = list(measure_fns)
    fns = [measure_fns[n] for n in names]

    for _ in range(warmup):
        for fn in fns:
            fn()

    samples: list[list[float]] = [[] for _ in fns]
    spent = [0.0 for _ in fns]
    rounds = 0
    while rounds < max_runs and (rounds < min_runs or min(spent) < min_seconds):
        for i, fn in enumerate(fns):
            start = clock()
            fn()
            elapsed = clock() - start
            samples[i].append(elapsed * 1e3)
            spent[i] += elapsed
        rounds += 1
    return {name: LatencyStats.from_samples(s) for name, s in zip(names, samples)}


Sampler = Callable[[int, int], list[float]]  # (warm-up calls, timed calls) -> seconds per timed call


def blocked(
    fns: dict[str, Callable[[], object]],
    *,
    warmup: int,
    min_runs: int,
    min_seconds: float,
    rounds: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, LatencyStats]:
    """Time competitors in alternating blocks A..A B..B C..C, `rounds` times, each block after its own warm-up.

    Alternating call by call (`timing.interleaved`) suits single-threaded code, but ONNX Runtime,
    OpenMP (PyTorch) and TVM keep their worker threads spinning for a while after each call: on a
    small machine the next runtime's first calls then fight those spinners. Whole blocks with a
    warm-up each keep that out of the samples, and several rounds still spread slow drift evenly.
    """

    def sampler(fn: Callable[[], object]) -> Sampler:
        def sample(warm: int, runs: int) -> list[float]:
            for _ in range(warm):
                fn()
            seconds = []
            for _ in range(runs):
                start = clock()
                fn()
                seconds.append(clock() - start)
            return seconds

        return sample

    return blocked_samples(
        {name: sampler(fn) for name, fn in fns.items()}, warmup=warmup, min_runs=min_runs, min_seconds=min_seconds, rounds=rounds
    )


def blocked_samples(
    samplers: dict[str, Sampler], *, warmup: int, min_runs: int, min_seconds: float = 0.0, rounds: int = 3
) -> dict[str, LatencyStats]:
    """`blocked` over competitors that time themselves: each sampler runs one block (its warm-up calls, then its
    timed calls) and returns the seconds of each timed call, e.g. measured on a remote device by its own clock."""
    if not samplers:
        raise TvmDeployError("nothing to measure: no functions given")
    per_block = max(1, -(-min_runs // rounds))
    block_warmup = max(2, -(-warmup // rounds)) if warmup else 0
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    spent = {name: 0.0 for name in samplers}
    done = 0
    while done < rounds or min(spent.values()) < min_seconds:
        for name, sample in samplers.items():
            seconds = sample(block_warmup, per_block)
            samples[name] += [s * 1e3 for s in seconds]
            spent[name] += sum(seconds)
        done += 1
        if done >= 10 * rounds:  # min_seconds unreachable in reasonable time: stop, the runs are enough
            break
    return {name: LatencyStats.from_samples(s) for name, s in samples.items()}
