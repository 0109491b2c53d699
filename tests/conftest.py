"""Shared fixtures: `exported_onnx(name)` (a zoo model, random seed 0, cached across sessions) and `tiny_onnx()`."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx_graphs import save_graph

_REPO = Path(__file__).resolve().parents[1]
# What the exported bytes depend on: the zoo/export sources and the exporter's versions.
_KEY_SOURCES = ("compile/models/mobilenetv2_spec.py", "compile/models/torch_models.py", "compile/models/export.py", "compile/models/zoo.py")
_KEY_PACKAGES = ("torch", "onnx")
_SEED = 0


def _cache_key() -> str:
    digest = hashlib.sha256()
    for rel in _KEY_SOURCES:
        digest.update(rel.encode() + b"\0" + (_REPO / rel).read_bytes())
    for package in _KEY_PACKAGES:
        try:
            digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package}=absent".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Callable[[str], Path]:
    """Factory: exported_onnx(zoo_name) -> path of that model's ONNX export (random weights, seed 0).

    Each test session gets its own copy; the disk cache under .pytest_cache/tvmdeploy-onnx/<key>/
    survives sessions and is invalidated when the zoo sources or torch/onnx versions change.
    """
    session_dir = tmp_path_factory.mktemp("exported_onnx")
    cache_root = Path(pytestconfig.rootpath) / ".pytest_cache" / "tvmdeploy-onnx"
    cache_dir = cache_root / _cache_key()
    done: dict[str, Path] = {}

    def export(name: str) -> Path:
        if name in done:
            return done[name]
        target = session_dir / f"{name}.onnx"
        cached = cache_dir / f"{name}.onnx"
        if cached.is_file():
            shutil.copyfile(cached, target)
        else:
            pytest.importorskip("torch", reason="exporting a zoo model needs torch (the [export] extra)")
            from tvmdeploy.compile.models.export import export_onnx

            export_onnx(name, target, seed=_SEED)
            _store(target, cache_root, cache_dir, cached)
        done[name] = target
        return target

    return export


def _store(source: Path, cache_root: Path, cache_dir: Path, cached: Path) -> None:
    """Copy into the cache atomically (parallel sessions may race) and drop stale keys' folders."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")
        shutil.copyfile(source, partial)
        os.replace(partial, cached)
        for old in cache_root.iterdir():
            if old.is_dir() and old != cache_dir:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # a read-only checkout only loses the cross-session cache


def tiny_classifier(path, *, input_shape=(1, 3, 16, 16), classes=10, extra_inputs=0, op="Conv", input_dims=None, seed=0):
    """Conv(3x3) -> Relu -> depthwise Conv -> GlobalAveragePool -> Flatten -> Gemm: the MobileNetV2 op mix, tiny."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w2")
    fc = numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(np.float32), "fc")
    nodes = [
        helper.make_node(op, ["input", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2])
        if op == "Conv"
        else helper.make_node(op, ["input"], ["c1"]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("GlobalAveragePool", ["c2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
    ]
    dims = list(input_dims) if input_dims is not None else list(input_shape)
    inputs = {"input": dims} | {f"extra{i}": [1] for i in range(extra_inputs)}
    return save_graph(path, nodes, inputs, {"logits": [dims[0], classes]}, [w1, w2, fc], name="tiny")


@pytest.fixture
def tiny_onnx(tmp_path):
    """Factory: tiny_onnx(**options) -> path of a fresh tiny classifier ONNX file."""
    counter = iter(range(1000))

    def make(**options):
        return tiny_classifier(tmp_path / f"tiny{next(counter)}.onnx", **options)

    return make


@pytest.fixture(scope="session")
def tiny_classifier_factory():
    """The `tiny_classifier(path, **options)` builder itself, for module- and session-scoped fixtures."""
    return tiny_classifier


@pytest.fixture(scope="session")
def calibration_photos(tmp_path_factory) -> Path:
    """A folder of four random RGB photos of odd sizes: calibration images for `quantize`."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="session")
def avx2_profile():
    """The x86-avx2 profile; skips on a CPU that cannot run its code (tuning and parity run it here)."""
    from tvmdeploy.targets import load_profile

    avx2 = load_profile("x86-avx2")
    if not avx2.runs_on_this_machine:
        pytest.skip("needs an x86-64 host with AVX2 (the x86-avx2 profile)")
    return avx2


@pytest.fixture(scope="session")
def a72_artifact(exported_onnx, tmp_path_factory) -> Path:
    """MobileNetV2 x0.25 (PaddleClas, random weights) cross-compiled for the Cortex-A72: the emulated board's model,
    built once for the board and bundle tests."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    out = tmp_path_factory.mktemp("board") / "a72"
    build_artifact(exported_onnx("ppcls_mobilenetv2_x0_25"), load_profile("arm-cortex-a72"), out)
    return out


@pytest.fixture(scope="session")
def native_board():
    """The board's RPC server (runtime/rpc/board_server.py) run natively here, with ONNX Runtime: a device for the
    tests of ORT on the device, bench and compare over RPC without an emulator. Each test opens its own session."""
    from rpc_processes import board_server

    service = board_server("native-board")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def native_board_without_ort(tmp_path_factory):
    """The same server on a Python that cannot import onnxruntime (a package of that name failing first on its path)."""
    from rpc_processes import board_server

    shadow = tmp_path_factory.mktemp("no-ort")
    (shadow / "onnxruntime").mkdir()
    (shadow / "onnxruntime" / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    service = board_server("no-ort-board", env={"PYTHONPATH": str(shadow)})
    yield service
    service.stop()
