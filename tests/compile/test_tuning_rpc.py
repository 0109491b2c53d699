"""Tuning through an RPC tracker: MetaSchedule's RPCRunner measures on a server registered under a key."""

from __future__ import annotations

import pytest
from rpc_processes import Service, free_port

from tests.compile.test_tuning import inverted_residual_onnx


@pytest.mark.rpc
def test_tuning_measures_through_the_tracker(tmp_path):
    from tvmdeploy.compile.tuning import tune
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    if not profile.runs_on_this_machine:
        pytest.skip("the local RPC server must be able to run x86-avx2 code")
    port = free_port()
    tracker = Service("rpc", "tracker", "--port", str(port))
    server = None
    try:
        tracker.wait_for("RPC tracker listening")
        server = Service("rpc", "server", "--key", "tune-test", "--tracker", f"127.0.0.1:{port}",
                          "--port", str(free_port()))
        server.wait_for("registering as 'tune-test'")
        model = inverted_residual_onnx(tmp_path / "tiny_ir.onnx")
        result = tune(model, profile, trials=2, ops="depthwise", auto_seed=False, log_dir=tmp_path / "db", trials_per_iter=2,
                      rpc_tracker=f"127.0.0.1:{port}", rpc_key="tune-test", progress_bar=False, quick_measure=True)
    finally:
        if server is not None:
            server.stop()
        tracker.stop()
    tuned = [o for o in result.outcomes if o.trials_after]
    assert [o.info.op_class for o in tuned] == ["depthwise"]
    assert tuned[0].after_ms is not None  # measured remotely, not failed
    assert sum(o.run_failures + o.build_failures for o in result.outcomes) == 0
