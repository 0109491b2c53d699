"""Trial allocation between tasks (compile/tuning/plan.py)."""

from tvmdeploy.compile.tuning.plan import allot, round_budget


def test_allot_follows_time_share():
    shares = {0: 6.0, 1: 3.0, 2: 1.0, 3: 0.0}
    room = {0: 1000, 1: 1000, 2: 1000, 3: 1000}
    plan = allot(shares, budget=160, step=16, room=room)
    assert plan == {0: 96, 1: 48, 2: 16}
    assert allot(shares, 160, 16, room, stalled={0})[1] >= 48  # a stalled task yields to the others
    assert allot(shares, 160, 16, {**room, 0: 20})[0] == 20  # per-task cap
    assert allot({0: 1.0, 1: 1e-9}, 8, 16, room) == {0: 8}  # always progress, within budget
    assert allot({}, 100, 16, room) == {}
    assert round_budget(10, 33, 16) == 10 and round_budget(10_000, 33, 16) == 16 * 12
