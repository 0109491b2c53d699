"""The one ONNX Runtime session set-up (runtime/ort_session.py): threads, sequential execution, config entries."""

import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.ort_session import ort_session


def test_the_session_runs_on_the_given_threads_with_the_given_config(tiny_onnx):
    session = ort_session(tiny_onnx(), threads=2, config={"session.intra_op.allow_spinning": "0"})
    options = session.get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_a_file_onnx_runtime_cannot_load_is_one_line(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(TvmDeployError, match="ONNX Runtime cannot load") as info:
        ort_session(broken)
    assert "\n" not in str(info.value)
