"""Local loading: hash-checked, shape-checked, refuses libraries for another CPU; batching pads correctly."""

import json
import platform

import numpy as np
import pytest

from tvmdeploy.compile.build import build_artifact
from tvmdeploy.runtime.artifact import LIBRARY_FILE
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.loader import LocalModule, run_in_batches, run_padded
from tvmdeploy.targets import load_profile


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_classifier_factory):
    folder = tmp_path_factory.mktemp("loader")
    onnx_path = tiny_classifier_factory(folder / "tiny.onnx")
    build_artifact(onnx_path, load_profile("x86-avx2"), folder / "art")
    return folder / "art"


def test_runs_and_checks_shape(artifact):
    module = LocalModule(artifact, threads=1)
    logits = module.run(np.zeros((1, 3, 16, 16), np.float32))
    assert logits.shape == (1, 10)
    with pytest.raises(TvmDeployError, match=r"input shape \[1, 3, 32, 32\] does not match the artifact's \[1, 3, 16, 16\]"):
        module.run(np.zeros((1, 3, 32, 32), np.float32))
    assert len(module.time(np.zeros((1, 3, 16, 16), np.float32), repeat=3)) == 3


def test_tampered_library_is_not_loaded(artifact, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    with open(copy / LIBRARY_FILE, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(TvmDeployError, match="refusing to load a modified library"):
        LocalModule(copy)


def _with_manifest(artifact, tmp_path, **changes):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data.update(changes)
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


def test_library_for_another_arch_is_refused_before_loading(artifact, tmp_path):
    other = "aarch64" if platform.machine() != "aarch64" else "x86_64"
    with pytest.raises(TvmDeployError, match=f"built for {other}.*rpc_tracker/rpc_key or rpc_server HOST:PORT"):
        LocalModule(_with_manifest(artifact, tmp_path, arch=other))


def test_missing_cpu_features_are_refused_before_loading(artifact, tmp_path):
    with pytest.raises(TvmDeployError, match="avx9000"):
        LocalModule(_with_manifest(artifact, tmp_path, cpu_flags=["avx2", "avx9000"]))


def test_run_in_batches_pads_and_trims():
    class Manifest:
        batch = 4
        input = type("I", (), {"shape": [4, 2, 1, 1]})
        output = type("O", (), {"shape": [4, 2]})

    calls = []

    def run_one(chunk):
        calls.append(chunk.shape[0])
        return chunk.reshape(len(chunk), 2) * 10

    images = np.arange(10, dtype=np.float32).reshape(5, 2, 1, 1)
    out = run_in_batches(run_one, Manifest, images)
    assert calls == [4, 4] and out.shape == (5, 2)
    np.testing.assert_array_equal(out, images.reshape(5, 2) * 10)
    with pytest.raises(TvmDeployError, match="does not match"):
        run_in_batches(run_one, Manifest, np.zeros((2, 3, 1, 1), np.float32))


def test_run_padded_runs_full_batches_only_and_returns_empty_for_no_inputs():
    calls = []

    def run_batch(chunk):
        calls.append(chunk.copy())
        return chunk.sum(axis=1, keepdims=True)

    inputs = np.arange(1, 7, dtype=np.float32).reshape(3, 2)
    out = run_padded(run_batch, inputs, 2, np.zeros((0, 1), np.float32))
    assert [c.shape for c in calls] == [(2, 2), (2, 2)] and not calls[1][1].any()  # the last chunk zero-padded
    np.testing.assert_array_equal(out, [[3], [7], [11]])
    empty = np.zeros((0, 1), np.float32)
    assert run_padded(run_batch, inputs[:0], 2, empty) is empty and len(calls) == 2
