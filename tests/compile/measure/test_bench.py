"""`bench`: TVM against ONNX Runtime where the artifact runs (here, or on the device with the board's own ORT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmdeploy.compile.measure.bench import bench
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import RpcEndpoint

FAST = dict(runs=6, warmup=1, min_seconds=0.0)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_classifier_factory) -> Path:
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    folder = tmp_path_factory.mktemp("bench")
    build_artifact(tiny_classifier_factory(folder / "tiny.onnx"), load_profile("x86-avx2"), folder / "art")
    return folder / "art"


def test_here_both_on_this_machine_with_the_same_threads(artifact):
    result = bench(artifact, threads=1, **FAST)
    assert list(result.rows) == ["TVM x86-avx2", result.ort_row] and result.ort_where == "host"
    assert result.threads == 1 and not result.remote and result.parity.passed
    assert result.ratio(result.ort_row) == 1.0 and result.ratio("TVM x86-avx2") > 0
    assert all(s.n >= FAST["runs"] for s in result.rows.values())
    record = result.to_dict()
    assert record["onnxruntime_on"] == "host" and record["results"]["TVM x86-avx2"]["ratio_to_ort"] == result.ratio("TVM x86-avx2")


def test_on_a_device_both_run_there_and_parity_is_the_devices(artifact, native_board):
    endpoint = RpcEndpoint.server(f"127.0.0.1:{native_board.port}", native_board.key)
    result = bench(artifact, endpoint, **FAST)
    # --threads on a device sizes TVM's pool there (runtime.config_threadpool), and ORT there follows it.
    assert bench(artifact, endpoint, threads=1, **FAST).threads == 1
    assert result.remote and result.ort_where == "device" and not result.ort_note
    assert list(result.rows) == ["TVM x86-avx2 (device)", result.ort_row] and result.ort_row.endswith("(device)")
    assert result.parity.passed and "on the device" in result.parity.reference
    assert all(s.n >= FAST["runs"] for s in result.rows.values()) and result.ratio("TVM x86-avx2 (device)") > 0


def test_a_device_without_onnx_runtime_is_timed_alone_and_checked_against_the_host(artifact, native_board_without_ort):
    service = native_board_without_ort
    result = bench(artifact, RpcEndpoint.server(f"127.0.0.1:{service.port}", service.key), **FAST)
    assert list(result.rows) == ["TVM x86-avx2 (device)"] and result.ort_row is None and result.ratio("TVM x86-avx2 (device)") is None
    assert result.ort_note.startswith("ONNX Runtime is not on the device: onnxruntime is not installed")
    assert result.parity.passed and "on the host" in result.parity.reference


def test_runs_and_warmup_are_checked_before_anything_opens(tmp_path):
    with pytest.raises(TvmDeployError, match="runs must be >= 1"):
        bench(tmp_path / "nothing", runs=0)
