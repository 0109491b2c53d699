"""ONNX Runtime on the device: the board server's functions, reached over real RPC (a native board server here)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from rpc_processes import Service, free_port

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import DeviceOrt, RpcEndpoint, connect, device_threads, set_device_threads


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_classifier_factory) -> Path:
    return tiny_classifier_factory(tmp_path_factory.mktemp("device-ort") / "tiny.onnx")


def _session(service):
    return connect(RpcEndpoint.server(f"127.0.0.1:{service.port}", service.key), timeout_s=30)


def test_the_board_runs_and_times_onnx_runtime_on_an_uploaded_model(native_board, tiny_model):
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input

    x = reference_input([1, 3, 16, 16])
    with _session(native_board) as session:
        info = session.info()
        assert info["onnxruntime"] and info["cpus"] >= 1 and not info["emulated"]
        assert 1 <= device_threads(session) <= info["cpus"]  # TVM's pool there: one per physical core
        set_device_threads(session, 1)
        assert device_threads(session) == 1
        device = DeviceOrt(session, tiny_model, threads=1)
        logits = device.run(x)
        samples = device.time(x, warmup=1, runs=4)
    np.testing.assert_allclose(logits, OrtModel(tiny_model, threads=1).run(x), rtol=0, atol=1e-6)
    assert len(samples) == 4 and all(s > 0 for s in samples)


def test_a_board_without_onnx_runtime_says_so_in_one_line(native_board_without_ort, tiny_model):
    with _session(native_board_without_ort) as session:
        assert session.info()["onnxruntime"] is None
        with pytest.raises(TvmDeployError, match=r"^ONNX Runtime is not on the device: onnxruntime is not installed") as caught:
            DeviceOrt(session, tiny_model)
    assert "\n" not in str(caught.value)


def test_a_model_newer_than_the_device_onnx_runtime_is_one_line(native_board, tiny_model, tmp_path):
    model = onnx.load(str(tiny_model))
    model.opset_import[0].version = 99  # no ONNX Runtime knows this opset yet
    newer = tmp_path / "opset99.onnx"
    onnx.save(model, str(newer))
    with _session(native_board) as session:
        device = DeviceOrt(session, newer)
        with pytest.raises(TvmDeployError, match=r"running ONNX Runtime on 127\.0\.0\.1:\d+ failed: .*ONNX Runtime cannot load") as caught:
            device.run(np.zeros((1, 3, 16, 16), np.float32))
    assert "\n" not in str(caught.value) and "opset" in str(caught.value).lower()


def test_tvmdeploy_rpc_server_offers_onnx_runtime_too(tiny_model):
    """`tvmdeploy rpc server` (TVM's rpc.Server, e.g. on another x86 machine) registers the board functions as well."""
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input

    service = Service("rpc", "server", "--port", str(free_port()))
    try:
        line = service.wait_for("RPC server listening on")
        port = int(line.split()[4].rstrip(",").rpartition(":")[2])
        x = reference_input([1, 3, 16, 16])
        with connect(RpcEndpoint.server(f"127.0.0.1:{port}"), timeout_s=30) as session:
            assert session.info()["onnxruntime"] and not session.is_emulated
            logits = DeviceOrt(session, tiny_model, threads=1).run(x)
        np.testing.assert_allclose(logits, OrtModel(tiny_model, threads=1).run(x), rtol=0, atol=1e-6)
    finally:
        service.stop()


def test_a_server_without_the_board_functions_offers_no_onnx_runtime(tiny_model):
    """TVM's own `python -m tvm.exec.rpc_server` knows nothing of tvmdeploy: one line, not a traceback."""
    port = free_port()
    service = Service(
        "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1), command=[sys.executable, "-m", "tvm.exec.rpc_server"]
    )
    try:
        service.wait_for("bind to 127.0.0.1", timeout_s=60)
        with connect(RpcEndpoint.server(f"127.0.0.1:{port}"), timeout_s=30) as session:
            with pytest.raises(TvmDeployError, match="is not a tvmdeploy one"):
                DeviceOrt(session, tiny_model)
    finally:
        service.stop()
