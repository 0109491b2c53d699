"""The emulated aarch64 board: package resolution, state, and (marker `rpc`) MobileNetV2 run on it end to end."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

import tvmdeploy
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.devices import board

CLI = [sys.executable, "-m", "tvmdeploy.tools.cli"]

APT_DEPENDS_SAMPLE = """\
libpython3.11-stdlib:arm64
  Depends: libpython3.11-minimal:arm64
 |Depends: <media-types:arm64>
    media-types
  Depends: <mime-support:arm64>
    mime-support
  Depends: libbz2-1.0:arm64
 |Depends: libdb5.3:arm64
  Depends: libdb-other:arm64
  Recommends: ca-certificates:arm64
libtirpc3:arm64
  Depends: libc6:arm64
  Depends: <libtirpc-common:arm64>
    libtirpc-common
"""


def test_apt_depends_parsing_takes_first_choices_and_this_arch_only():
    deps = board.root._parse_apt_depends(APT_DEPENDS_SAMPLE, "arm64")
    # media-types (first choice, arch-independent) is not needed to run Python; libdb-other is an unused alternative.
    assert deps["libpython3.11-stdlib"] == ["libpython3.11-minimal", "libbz2-1.0", "libdb5.3"]
    assert deps["libtirpc3"] == ["libc6"]


def test_board_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(board.BOARD_DIR_ENV, str(tmp_path / "b"))
    assert board.board_dir() == tmp_path / "b"
    monkeypatch.delenv(board.BOARD_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert board.board_dir() == tmp_path / "cache" / "tvmdeploy" / "board-aarch64"
    with pytest.raises(TvmDeployError, match="supported: aarch64"):
        board.ensure_built("riscv64")


def test_status_of_an_empty_board_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(board.BOARD_DIR_ENV, str(tmp_path))
    assert board.status() == [] and board.stop() == []
    assert not board.board_is_emulated(board.DEFAULT_KEY)


def test_stale_state_is_dropped(monkeypatch, tmp_path):
    monkeypatch.setenv(board.BOARD_DIR_ENV, str(tmp_path))
    (tmp_path / "run").mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    state = board.BoardServer(
        pid=dead.pid, key="k", arch="aarch64", emulator="qemu-aarch64-static", host="127.0.0.1", port=9090, tracker="", log="", started=0.0
    )
    board.servers._write_state(board.BoardRoot(tmp_path, board.ARCHES["aarch64"]), state)
    [seen] = board.status()
    assert not seen.alive and not board.board_is_emulated("k")
    assert list((tmp_path / "run").glob("*.json")) == []


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="needs Debian's apt")
def test_resolves_the_python_runtime_packages():
    probe = subprocess.run(["apt-cache", "show", "libc6:arm64"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("arm64 package lists missing (run tools/install_system_deps.sh)")
    packages = board.resolve_packages(board.ARCHES["aarch64"])
    assert {"python3.11-minimal", "libpython3.11-stdlib", "libc6", "libstdc++6", "libffi8", "zlib1g"} <= set(packages)
    assert not {"dpkg", "perl-base", "tar"} & set(packages)


# ------------------------------------------------------------------ the real board (marker rpc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*argv: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *argv], capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def tracker_address():
    """A tracker handed out the moment it is started, not once it listens: as the README's
    `tvmdeploy rpc tracker &` followed at once by `tvmdeploy board up --tracker ...` (board_key) does."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "rpc", "tracker", "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    yield f"127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(15)


@pytest.fixture(scope="module")
def board_key(tracker_address):
    """Two emulated board servers with one fresh key (a small farm), stopped with `board down --key`."""
    key = f"qemu-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    up = cli("board", "up", "--tracker", tracker_address, "--key", key, "--count", "2", "--timeout", "600")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        print(f"board up (incl. any first build): {time.monotonic() - started:.0f} s")
        assert "emulated by qemu-aarch64-static" in up.stdout and "not a Cortex-A's" in up.stdout
        yield key
    finally:
        down = cli("board", "down", "--key", key, timeout_s=120)
        assert down.returncode == 0 and "stopped board server" in down.stdout
        assert not board.board_is_emulated(key)


@pytest.mark.rpc
@pytest.mark.timeout(1800)
def test_mobilenetv2_on_the_emulated_board_matches_onnx_runtime(tracker_address, board_key, a72_artifact):
    from tvmdeploy.compile.backends.cross import elf_machine
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input
    from tvmdeploy.runtime.artifact import verify_onnx
    from tvmdeploy.runtime.rpc import RemoteModule, RpcEndpoint, connect

    assert elf_machine(a72_artifact / "model.so") == "aarch64"
    assert board.board_is_emulated(board_key)
    x = reference_input([1, 3, 224, 224])
    expected = OrtModel(verify_onnx(a72_artifact)).run(x)
    session = connect(RpcEndpoint.tracker(tracker_address, board_key), timeout_s=60)
    with RemoteModule(session, a72_artifact) as module:
        info = session.info()
        assert info["arch"] == "aarch64" and info["emulated"] and module.emulated
        assert "EMULATED" in module.description
        started = time.monotonic()
        logits = module.run(x)
        print(f"remote run under qemu: {time.monotonic() - started:.1f} s")
        assert np.abs(logits - expected).max() <= 1e-4
        top5 = lambda a: list(np.argsort(-a[0])[:5])  # noqa: E731
        assert top5(logits) == top5(expected)
        times = module.time(x, number=1, repeat=2)
        assert len(times) == 2 and all(t > 0 for t in times)


@pytest.mark.rpc
@pytest.mark.timeout(1800)
def test_int8_mobilenetv2_runs_sdot_kernels_on_the_board_bit_exact_with_onnx_runtime(
    tracker_address, board_key, exported_onnx, calibration_photos, tmp_path
):
    """The INT8 flow on the board: quantize x0.25, build for the Cortex-A76 (sdot), run remotely, compare with
    ONNX Runtime on the same QDQ file."""
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input
    from tvmdeploy.compile.measure.verify import output_step
    from tvmdeploy.compile.quantization.calibrate import quantize_model
    from tvmdeploy.runtime.rpc import RemoteModule, RpcEndpoint, connect
    from tvmdeploy.targets import load_profile

    qdq = quantize_model(exported_onnx("ppcls_mobilenetv2_x0_25"), calibration_photos, tmp_path / "q.onnx", progress=False).output
    result = build_artifact(qdq, load_profile("arm-cortex-a76"), tmp_path / "a76")
    assert result.manifest.tuning["float_emulated"] == []
    assert result.parity is None  # cross-compiled: checked here, on the device
    x = reference_input([1, 3, 224, 224])
    expected = OrtModel(qdq).run(x)
    session = connect(RpcEndpoint.tracker(tracker_address, board_key), timeout_s=60)
    with RemoteModule(session, result.artifact_dir) as module:
        logits = module.run(x)
    assert np.abs(logits - expected).max() <= output_step(qdq) / 2
    assert list(np.argsort(-logits[0])[:5]) == list(np.argsort(-expected[0])[:5])
    # The same flow as fp32 on the board: TVM's int8 and the board's own ONNX Runtime on the QDQ file, both there.
    # ONNX Runtime's fused int8 kernels round differently per CPU: on this model its aarch64 build is 1 output step
    # from the unfused QDQ semantics and its x86 build (which TVM matches) 3 steps, so the check on the device holds
    # to the model's step bound, not to the host's bit-exactness (and top-5 of random weights may differ).
    bench = tvmdeploy.bench(result.artifact_dir, tracker_address, board_key, runs=2, warmup=0)
    assert bench.ort_where == "device" and bench.int8_agreement and "on the device" in bench.parity.reference
    assert bench.parity.max_abs_diff <= bench.parity.steps * bench.parity.step
    assert all(s.n >= 2 for s in bench.rows.values())


@pytest.mark.rpc
@pytest.mark.timeout(1800)
def test_cli_bench_and_status_say_the_board_is_emulated(tracker_address, board_key, a72_artifact):
    bench = cli(
        "bench", str(a72_artifact), "--rpc-tracker", tracker_address, "--rpc-key", board_key, "--runs", "2", "--warmup", "1", "--no-ort"
    )
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert "emulated" in bench.stdout and "(device)" in bench.stdout
    status = cli("rpc", "status", "--tracker", tracker_address)
    row = next(line for line in status.stdout.splitlines() if line.startswith(board_key))
    assert row.split()[1] == "2" and "emulated" in row
    listing = cli("board", "status")
    assert listing.stdout.count(f"key '{board_key}'") == 2 and "not a Cortex-A's" in listing.stdout


@pytest.mark.rpc
@pytest.mark.timeout(600)
def test_unknown_key_on_a_live_tracker_fails_fast(tracker_address, board_key, a72_artifact):
    started = time.monotonic()
    run = cli("bench", str(a72_artifact), "--rpc-tracker", tracker_address, "--rpc-key", "no-such-board", "--no-ort")
    assert run.returncode == 2 and "no RPC server with key 'no-such-board'" in run.stderr
    assert board_key in run.stderr and time.monotonic() - started < 60


@pytest.mark.rpc
@pytest.mark.timeout(600)
def test_board_farm_serves_clients_in_parallel_and_can_measure(tracker_address, board_key):
    from tvmdeploy.runtime.rpc import RpcEndpoint, connect

    endpoint = RpcEndpoint.tracker(tracker_address, board_key)
    with connect(endpoint, timeout_s=60) as first, connect(endpoint, timeout_s=60) as second:
        assert first.server != second.server
        for session in (first, second):
            # MetaSchedule's runner fills inputs with this; it lives in libtvm_runtime_extra.so.
            session.tvm.get_function("tvm.contrib.random.random_fill_for_measure")


def _sessions_served(log: Path) -> int:
    """Modules a board server loaded (its log says `load_module` once per measurement session or run)."""
    return log.read_text(errors="replace").count("load_module")


@pytest.mark.rpc
@pytest.mark.timeout(900)
def test_tuning_measures_on_both_emulated_boards_and_keeps_every_record_once(tracker_address, board_key, tmp_path):
    """A farm of two emulated aarch64 boards under one key: MetaSchedule's RPC runner gets a worker per board,
    both boards measure, and every trial lands in the database once (cross-compiled here, run under qemu)."""
    from tests.compile.tuning.test_driver import _record_keys, inverted_residual_onnx
    from tvmdeploy.compile.tuning.driver import tune
    from tvmdeploy.targets import load_profile

    logs = [Path(server.log) for server in board.status() if server.key == board_key]
    assert len(logs) == 2
    before = [_sessions_served(log) for log in logs]
    result = tune(
        inverted_residual_onnx(tmp_path / "tiny_ir.onnx"),
        load_profile("arm-cortex-a72"),
        trials=8,
        ops="pointwise",
        auto_seed=False,
        log_dir=tmp_path / "db",
        trials_per_iter=8,
        rpc_tracker=tracker_address,
        rpc_key=board_key,
        progress_bar=False,
        quick_measure=True,
    )
    served = [_sessions_served(log) - count for log, count in zip(logs, before)]
    assert all(n > 0 for n in served), f"both boards must measure: sessions per board {served}"
    records = _record_keys(tmp_path / "db")
    assert result.trials_run == 8 and len(records) == 8 and len(set(records)) == 8  # none lost, none twice
    assert sum(o.run_failures + o.build_failures for o in result.outcomes) == 0


def test_board_up_waits_for_a_starting_tracker_then_gives_up_in_one_line(capsys):
    """Nothing ever listens: `board up --tracker` says it waits, waits the bound, then fails before building anything."""
    from tvmdeploy.tools.cli.main import main

    code = main(["board", "up", "--tracker", f"127.0.0.1:{free_port()}", "--tracker-wait", "0.5"])
    captured = capsys.readouterr()
    assert code == 2
    assert "waiting up to 0.5 s for the RPC tracker at 127.0.0.1:" in captured.out
    assert captured.err.startswith("error: no RPC tracker at 127.0.0.1:") and "after waiting 0.5 s" in captured.err
    assert captured.err.count("\n") == 1 and "starting" not in captured.out
