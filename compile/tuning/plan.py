"""Trial allocation between tasks: every task once, then rounds proportional to where the time is."""

from __future__ import annotations


def allot(
    shares: dict[int, float],
    budget: int,
    step: int,
    room: dict[int, int],
    stalled: set[int] | None = None,
) -> dict[int, int]:
    """Trials per task for one round.

    shares: each task's current share of network time (calls x best latency); `room`: trials it may
    still take (per-task cap). A task whose best did not improve in its last round (`stalled`) counts
    half: its time is real, but more trials there pay less. Allotments are multiples of `step` (one
    search iteration), and at least the biggest-share task gets one, so a round always makes progress.
    """
    stalled = stalled or set()
    weights = {t: s * (0.5 if t in stalled else 1.0) for t, s in shares.items() if room.get(t, 0) > 0 and s > 0}
    if not weights or budget <= 0:
        return {}
    total = sum(weights.values())
    plan: dict[int, int] = {}
    for task, weight in sorted(weights.items(), key=lambda kv: -kv[1]):
        trials = int(round(budget * weight / total / step)) * step
        trials = min(trials, room[task], budget - sum(plan.values()))
        if trials > 0:
            plan[task] = trials
    if not plan:
        top = max(weights, key=weights.get)
        plan[top] = min(step, room[top], budget)
    return plan


def round_budget(remaining: int, tasks: int, step: int) -> int:
    """Trials in one proportional round: big enough to spread over the top kernels, small enough to
    re-plan often (a kill also loses at most the batch in flight, not a round)."""
    return min(remaining, step * max(4, min(tasks, 12)))
