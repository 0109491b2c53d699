"""The runtime-only bundle: what goes in, and that it runs an artifact with only Python, numpy and Pillow."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.main import main as cli_main
from tvmdeploy.tools.devices import bundle
from tvmdeploy.tools.devices.bundle import keep_member, make_bundle

CLI = [sys.executable, "-m", "tvmdeploy.tools.cli"]
CAT = Path(__file__).resolve().parents[3] / "tools" / "assets" / "cat.jpg"
# The x86-64 bundle with one Python and no libcudart measured 4.4 MB; far more means the filter broke.
MAX_RUNTIME_BUNDLE_MB = 10


def test_compiler_library_and_compiler_python_are_left_out() -> None:
    assert not keep_member("tvm/lib/libtvm_compiler.so")
    assert not keep_member("tvm/relax/__init__.py")
    assert not keep_member("tvm/s_tir/dlight/gpu/matmul.py")
    assert not keep_member("tvm/include/tvm/runtime/module.h")
    assert not keep_member("tvm/backend/cuda/codegen/header.py")
    assert not keep_member("tvm_ffi/cython/function.pxi")
    assert not keep_member("tvm/runtime/__pycache__/module.cpython-311.pyc")


def test_runtime_libraries_and_runtime_python_are_kept() -> None:
    for name in (
        "tvm/lib/libtvm_runtime.so",
        "tvm/lib/libtvm_runtime_cuda.so",
        "tvm/lib/libtvm_runtime_extra.so",
        "tvm_ffi/lib/libtvm_ffi.so",
        "tvm_ffi/lib/libtvm_ffi_testing.so",
        "tvm_ffi/core.cpython-312-x86_64-linux-gnu.so",
        "tvm/__init__.py",
        "tvm/runtime/vm.py",
        "tvm/backend/_autoload_backends.py",
        "tvm/rpc/server.py",
        "tvm/LICENSE",
    ):
        assert keep_member(name), name


def test_unknown_platform_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(TvmDeployError, match="unknown platform 'windows-x86'"):
        make_bundle("windows-x86", tmp_path / "b.tar.gz")


def test_missing_wheel_offline_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(TvmDeployError, match="pip download") as info:
        bundle.find_wheel(bundle.FFI_DIST, "linux-aarch64", "3.11", tmp_path, download=False)
    assert "manylinux_2_28_aarch64" in str(info.value)


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    # The "data" filter (refuse links out of dest, absolute names) exists from Python 3.11.4 / 3.12.
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
    else:
        tar.extractall(dest)


def _deps_only_numpy_pillow(folder: Path) -> Path:
    """A folder holding just numpy and Pillow (links into this environment): the device's site-packages."""
    folder.mkdir()
    for package in ("numpy", "PIL"):
        root = Path(list(importlib.util.find_spec(package).submodule_search_locations)[0])
        (folder / root.name).symlink_to(root)
        for libs in root.parent.glob(f"{'pillow' if package == 'PIL' else package}.libs"):
            (folder / libs.name).symlink_to(libs)
    return folder


@pytest.fixture(scope="module")
def avx2_artifact(exported_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    profile = load_profile("x86-avx2")
    if not profile.runs_on_this_machine:
        pytest.skip("this CPU cannot run the x86-avx2 profile (needs x86-64 with AVX2)")
    out = tmp_path_factory.mktemp("bundle") / "mnv2_x0_25_avx2"
    build_artifact(exported_onnx("ppcls_mobilenetv2_x0_25"), profile, out, verify=False)
    return out


def test_bundle_runs_artifact_with_only_numpy_and_pillow(avx2_artifact: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "bundle.tar.gz"
    code = cli_main(
        ["bundle", "--platform", "linux-x86_64", "-o", str(archive), "--artifact", str(avx2_artifact), "--cudart", "no", "--offline"]
    )
    assert code == 0
    assert f"wrote {archive}" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        _extract(tar, tmp_path / "x")
    assert not any("libtvm_compiler" in n for n in names)
    assert any(n.endswith("site/tvm/lib/libtvm_runtime.so") for n in names)
    # Only the artifact's library and manifest, which leaves the runtime itself small.
    artifact_bytes = sum((avx2_artifact / f).stat().st_size for f in ("model.so", "manifest.json"))
    assert archive.stat().st_size - artifact_bytes < MAX_RUNTIME_BUNDLE_MB * 1e6

    root = tmp_path / "x" / "tvmdeploy-runtime-linux-x86_64"
    deps = _deps_only_numpy_pillow(tmp_path / "deps")
    logits_file = tmp_path / "logits.npy"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a JPEG")
    # -S: no site-packages at all (no TVM compiler, torch or onnxruntime); only the stdlib, deps and the bundle.
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(deps), "HOME": str(tmp_path)}
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-s",
            str(root / "classify.py"),
            str(root / "artifacts" / avx2_artifact.name),
            str(broken),
            str(CAT),
            "--json",
            "--save-logits",
            str(logits_file),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    # As `tvmdeploy run`: the unreadable image is listed on stderr, the other classified, exit status 1.
    assert done.returncode == 1, done.stderr
    assert "unreadable: " in done.stderr and str(broken) in done.stderr and "1 of 2 image(s)" in done.stderr
    report = json.loads(done.stdout)
    assert report["runtime_only"] is True and report["unreadable"] == 1
    assert [r["image"] for r in report["results"]] == [str(broken), str(CAT)]
    assert "error" in report["results"][0] and len(report["results"][1]["top"]) == 5

    # The full build (compiler present, this process) gives the same logits for the same image.
    from tvmdeploy.runtime.loader import load_artifact
    from tvmdeploy.runtime.preprocess import load_image

    expected = load_artifact(avx2_artifact).run_images(load_image(CAT)[np.newaxis])
    np.testing.assert_allclose(np.load(logits_file), expected, rtol=1e-5, atol=1e-5)


def test_bundle_without_pillow_fails_with_a_clear_error(avx2_artifact: Path, tmp_path: Path) -> None:
    archive = make_bundle("linux-x86_64", tmp_path / "b.tar.gz", artifacts=[avx2_artifact], cudart="no", download=False).path
    with tarfile.open(archive) as tar:
        _extract(tar, tmp_path / "x")
    root = tmp_path / "x" / "tvmdeploy-runtime-linux-x86_64"
    done = subprocess.run(
        [sys.executable, "-S", "-s", str(root / "classify.py"), str(root / "artifacts" / avx2_artifact.name), str(CAT)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 2
    assert "error:" in done.stderr and "lacks numpy and Pillow" in done.stderr


def test_aarch64_bundle_from_cached_wheels(tmp_path: Path) -> None:
    try:
        result = make_bundle("linux-aarch64", tmp_path / "arm.tar.gz", download=False)
    except TvmDeployError as exc:
        pytest.skip(f"aarch64 wheels not cached (tests never download): {exc}")
    with tarfile.open(result.path) as tar:
        member = tar.extractfile("tvmdeploy-runtime-linux-aarch64/site/tvm/lib/libtvm_runtime.so")
        header = member.read(20)
        names = tar.getnames()
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    assert any(n.endswith("tvm_ffi/core.cpython-311-aarch64-linux-gnu.so") for n in names)
    assert not any("libtvm_compiler" in n for n in names)
    assert result.size_bytes < MAX_RUNTIME_BUNDLE_MB * 1e6
    info = json.loads(tarfile.open(result.path).extractfile("tvmdeploy-runtime-linux-aarch64/BUNDLE.json").read())
    assert info["platform"] == "linux-aarch64" and info["python_versions"] == ["3.11"]


@pytest.fixture(scope="module")
def aarch64_bundle(a72_artifact, tmp_path_factory) -> tuple[Path, Path]:
    """(the unpacked linux-aarch64 bundle with ONNX Runtime and the A72 artifact, the board root whose Debian Python
    runs it under qemu): what a real board gets, made the way the README's recipe makes it."""
    from tvmdeploy.tools.devices import board

    root = board.ensure_built(progress=False)  # the board's Debian arm64 Python and its aarch64 wheels
    folder = tmp_path_factory.mktemp("aarch64-bundle")
    archive = folder / "arm.tar.gz"
    assert cli_main(["bundle", "--platform", "linux-aarch64", "--with-ort", "-o", str(archive), "--artifact", str(a72_artifact)]) == 0
    with tarfile.open(archive) as tar:
        _extract(tar, folder / "x")
    return folder / "x" / "tvmdeploy-runtime-linux-aarch64", root


def _board_numpy_pillow(root, folder: Path) -> Path:
    """The board's numpy and Pillow alone (nothing else of the board root's site-packages is visible)."""
    folder.mkdir()
    for name in ("numpy", "numpy.libs", "PIL", "pillow.libs"):
        if (root.site / name).exists():
            (folder / name).symlink_to(root.site / name)
    return folder


@pytest.mark.rpc
def test_aarch64_bundle_runs_on_the_emulated_board(aarch64_bundle, a72_artifact, exported_onnx, tmp_path: Path) -> None:
    """The acceptance path of a real board: only Python, numpy and Pillow there, plus the bundle."""
    from tvmdeploy.compile.measure.reference import OrtModel
    from tvmdeploy.runtime.preprocess import preprocess_images

    bundle_dir, root = aarch64_bundle
    only = _board_numpy_pillow(root, tmp_path / "numpy-and-pillow")
    logits_file = tmp_path / "logits.npy"
    completed = subprocess.run(
        root.command(
            "-S",
            str(bundle_dir / "classify.py"),
            str(bundle_dir / "artifacts" / a72_artifact.name),
            str(CAT),
            "--save-logits",
            str(logits_file),
        ),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(only)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "runtime-only" in completed.stdout and "1." in completed.stdout
    expected = OrtModel(exported_onnx("ppcls_mobilenetv2_x0_25")).run(preprocess_images([CAT]))
    actual = np.load(logits_file)
    assert np.abs(actual - expected).max() <= 1e-4
    assert (np.argsort(-actual)[0, :5] == np.argsort(-expected)[0, :5]).all()


@pytest.mark.rpc
@pytest.mark.timeout(900)
def test_board_started_from_the_bundle_serves_bench_with_onnx_runtime(aarch64_bundle, a72_artifact, tmp_path: Path) -> None:
    """README's real-board recipe on the emulated board: `python3 serve.py --tracker ... --key ...` from the unpacked
    archive (numpy beside it, nothing else), then `tvmdeploy bench` over the tracker: TVM and the board's own ONNX
    Runtime, both timed there, parity checked there."""
    from rpc_processes import Service, free_port

    bundle_dir, root = aarch64_bundle
    only = _board_numpy_pillow(root, tmp_path / "numpy-only")
    tracker = Service("rpc", "tracker", "--port", str(free_port()))
    server = None
    try:
        address = tracker.wait_for("RPC tracker listening on").split()[4].rstrip(",")
        key = "bundle-board"
        server = subprocess.Popen(
            root.command("-S", str(bundle_dir / "serve.py"), "--tracker", address, "--key", key, "--emulated-by", root.arch.qemu),
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(only)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        lines = []
        for line in server.stdout:
            lines.append(line)
            if "tvmdeploy-board: listening on" in line:
                break
        assert "tvmdeploy-board: onnxruntime " in "".join(lines), "".join(lines)
        bench = subprocess.run(
            [*CLI, "bench", str(a72_artifact), "--rpc-tracker", address, "--rpc-key", key, "--runs", "2", "--warmup", "1", "--json"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert bench.returncode == 0, bench.stderr[-3000:]
        report = json.loads(bench.stdout)
        assert report["onnxruntime_on"] == "device" and report["emulated"] and report["parity"]["status"] == "passed"
        assert "on the device" in report["parity"]["reference"]
        assert [name.rsplit(" ", 1)[-1] for name in report["results"]] == ["(device)", "(device)"]
        from tvmdeploy.runtime.rpc import RpcEndpoint, connect

        with connect(RpcEndpoint.tracker(address, key), timeout_s=60) as session:
            assert session.info()["tvm_path"].startswith(str(bundle_dir))  # the bundle's TVM, not the board root's
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        tracker.stop()
