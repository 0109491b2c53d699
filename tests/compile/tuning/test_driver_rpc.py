"""Tuning through an RPC tracker: MetaSchedule's RPCRunner measures on a server registered under a key."""

from __future__ import annotations

import pytest
from rpc_processes import Service, free_port

from tests.compile.tuning.test_driver import inverted_residual_onnx


@pytest.mark.rpc
def test_a_farm_of_boards_shares_the_measurements(tmp_path):
    """Two servers under one key: the runner gets a worker per board and the tracker hands out both.

    (One test for both: a farm of one is the plain tracker case, and each tuning run costs about a minute.)
    """
    from tests.compile.tuning.test_driver import _record_keys
    from tvmdeploy.compile.tuning.driver import tune
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    if not profile.runs_on_this_machine:
        pytest.skip("the local RPC servers must be able to run x86-avx2 code")
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port))
    servers, work = [], []
    try:
        tracker.wait_for("RPC tracker listening")
        for number in range(2):
            # Each session works in a fresh temporary folder: its parent's mtime says the board served one.
            folder = tmp_path / f"board{number}"
            folder.mkdir()
            work.append(folder)
            servers.append(Service("rpc", "server", "--key", "farm", "--tracker", f"127.0.0.1:{port}",
                                   "--port", str(free_port()), env={"TMPDIR": str(folder)}))
        for server in servers:
            server.wait_for("registering as 'farm'")
        before = [f.stat().st_mtime_ns for f in work]
        model = inverted_residual_onnx(tmp_path / "tiny_ir.onnx")
        result = tune(model, profile, trials=8, ops="depthwise,pointwise", auto_seed=False, log_dir=tmp_path / "db",
                      trials_per_iter=4, rpc_tracker=f"127.0.0.1:{port}", rpc_key="farm", progress_bar=False,
                      quick_measure=True)
    finally:
        for server in servers:
            server.stop()
        tracker.stop()
    after = [f.stat().st_mtime_ns for f in work]
    assert all(a != b for a, b in zip(after, before)), "both boards must have served measurement sessions"
    records = _record_keys(tmp_path / "db")
    assert result.trials_run == 8 and len(records) == 8 and len(set(records)) == 8  # none lost, none twice
    assert sum(o.run_failures + o.build_failures for o in result.outcomes) == 0
    tuned = [o for o in result.outcomes if o.trials_after]
    assert {o.info.op_class for o in tuned} == {"depthwise", "pointwise"}
    assert all(o.after_ms is not None for o in tuned)  # measured remotely, not failed
