"""The shared Relax pipeline: NHWC lowering with ReLU6 fused into the convs, and untuned compile parity."""

from __future__ import annotations

import numpy as np
import pytest

from tests.compile.tuning.test_driver import inverted_residual_onnx


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tvmdeploy.compile.frontend import import_onnx

    path = inverted_residual_onnx(tmp_path_factory.mktemp("pipeline") / "tiny_ir.onnx")
    mod, info = import_onnx(path)
    return path, mod, info


@pytest.fixture(scope="module")
def cpu_profile():
    from tvmdeploy.targets import load_profile

    return load_profile("x86-avx2")


def test_prepare_fuses_relu6_into_nhwc_convs(tiny, cpu_profile):
    from tvmdeploy.compile.pipeline import prepare, tuning_tasks

    _, mod, _ = tiny
    names = [task.task_name for task in tuning_tasks(prepare(mod, cpu_profile), cpu_profile)]
    convs = [n for n in names if "conv2d" in n]
    assert len(convs) == 3
    # ReLU6 (ONNX Clip) lands in the conv kernels, not in transpose sandwiches of its own.
    assert sum("maximum" in n and "minimum" in n for n in convs) == 2
    assert not any("transpose" in n and "maximum" in n for n in names)


def test_untuned_compile_matches_onnxruntime(tiny, cpu_profile):
    import onnxruntime as ort
    import tvm
    from tvm import relax

    from tvmdeploy.compile.pipeline import compile_relax

    path, mod, info = tiny
    if not cpu_profile.runs_on_this_machine:
        pytest.skip("needs an AVX2 x86-64 host")
    compiled = compile_relax(mod, cpu_profile)
    assert compiled.tasks_total == 0 and compiled.tasks_from_database == 0
    x = np.random.default_rng(3).standard_normal(info.input_shape).astype(np.float32)
    got = relax.VirtualMachine(compiled.executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_model_key_ignores_weight_values(tiny, cpu_profile, tmp_path):
    import onnx
    from onnx import numpy_helper

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import prepare, tuning_tasks
    from tvmdeploy.compile.tuning.tasks import describe_tasks, model_key

    path, mod, _ = tiny
    model = onnx.load(str(path))
    for init in model.graph.initializer:  # same architecture, other weights (the ReLU6 bounds stay)
        values = numpy_helper.to_array(init)
        if values.ndim == 0:
            continue
        init.CopyFrom(numpy_helper.from_array((values * 2 + 1).astype(values.dtype), init.name))
    other = tmp_path / "reweighted.onnx"
    onnx.save(model, str(other))
    other_mod, _ = import_onnx(other)

    def key(m):
        return model_key(describe_tasks(tuning_tasks(prepare(m, cpu_profile), cpu_profile)))

    assert key(mod) == key(other_mod)
