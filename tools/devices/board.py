"""The emulated aarch64 board: build its root once, then start, stop and list its RPC servers under qemu-user."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc import TRACKER_START_WAIT_S, RpcEndpoint, tracker_summary, wait_for_tracker

BOARD_DIR_ENV = "TVMDEPLOY_BOARD_DIR"  # overrides where the board is built and its run state kept
DEFAULT_KEY = "qemu-aarch64"  # the key itself tells every tracker listing that timings are emulated
PYTHON = "python3.11"
# What the board needs from Debian: the interpreter with its stdlib, and the C++ runtime TVM links.
ROOT_PACKAGES = ("python3.11-minimal", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1")
# Package-manager tools some libraries pre-depend on; nothing on the board runs them.
SKIP_PACKAGES = frozenset({"dpkg", "install-info", "tar", "debconf", "perl-base", "perl", "base-files"})
# Board Python packages, pinned to the host's versions where the host has them.
WHEELS = (
    "apache-tvm",
    "apache-tvm-ffi",
    "numpy",
    "ml_dtypes",
    "psutil",
    "tornado",
    "cloudpickle",
    "pillow",
    "typing_extensions",
)
# The compiler library (260 MB) is never loaded on the board (TVM_USE_RUNTIME_LIB=1): skip unpacking it.
SKIP_WHEEL_FILES = ("tvm/lib/libtvm_compiler.so",)
EXTRA_RUNTIME_LIB = "tvm/lib/libtvm_runtime_extra.so"  # random_fill_for_measure, needed by MetaSchedule runs
SERVER_SCRIPT = "board_server.py"
BUILD_STAMP = "board.json"  # written last: a root without it is incomplete and is rebuilt


@dataclass(frozen=True)
class Arch:
    name: str
    debian: str
    qemu: str
    wheel_platform: str


ARCHES = {"aarch64": Arch("aarch64", "arm64", "qemu-aarch64-static", "manylinux_2_28_aarch64")}


@dataclass
class BoardServer:
    """One RPC server process of the board, as recorded in its state file."""

    pid: int
    key: str
    arch: str
    emulator: str
    host: str
    port: int
    tracker: str  # "HOST:PORT", or "" for a direct server
    log: str
    started: float
    alive: bool = True

    @property
    def emulated(self) -> bool:
        return bool(self.emulator)


def board_dir(arch: str = "aarch64") -> Path:
    """Where the board root lives: $TVMDEPLOY_BOARD_DIR, else ~/.cache/tvmdeploy/board-<arch>."""
    override = os.environ.get(BOARD_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tvmdeploy" / f"board-{arch}"


def _arch(arch: str) -> Arch:
    if arch not in ARCHES:
        raise TvmDeployError(f"no emulated board for arch '{arch}'; supported: {', '.join(ARCHES)}")
    return ARCHES[arch]


def _need_tool(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise TvmDeployError(
            f"'{command}' is not installed; install it with: apt-get install {package} (or run tools/install_system_deps.sh)"
        )
    return found


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise TvmDeployError(f"{' '.join(cmd[:3])} ... failed: {last[0]}")
    return result


def _progress(iterable, desc: str, total: int | None = None, show: bool = True):
    """A tqdm bar on stderr over `iterable` (or a manual one for None); the iterable itself when not shown."""
    if not show:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="file", file=sys.stderr, leave=True)


# ---------------------------------------------------------------- root build


def _ensure_foreign_arch(arch: Arch) -> None:
    """Debian must know the board's architecture; adding it needs root (tools/install_system_deps.sh does it)."""
    _need_tool("apt-get", "apt")
    _need_tool("dpkg", "dpkg")
    foreign = _run(["dpkg", "--print-foreign-architectures"]).stdout.split()
    if arch.debian not in foreign:
        if os.geteuid() != 0:
            raise TvmDeployError(
                f"Debian architecture {arch.debian} is not enabled; run tools/install_system_deps.sh as root "
                f"(dpkg --add-architecture {arch.debian} && apt-get update)"
            )
        _run(["dpkg", "--add-architecture", arch.debian])
        _run(["apt-get", "update"])
    probe = subprocess.run(["apt-cache", "show", f"libc6:{arch.debian}"], capture_output=True)
    if probe.returncode != 0:
        if os.geteuid() != 0:
            raise TvmDeployError(f"no {arch.debian} package lists; run apt-get update as root (tools/install_system_deps.sh)")
        _run(["apt-get", "update"])


def _parse_apt_depends(text: str, arch: str) -> dict[str, list[str]]:
    """`apt-cache depends` output -> {package: [dependencies]}, first choice of each alternative group."""
    suffix = f":{arch}"
    deps: dict[str, list[str]] = {}
    current: str | None = None
    in_group = False  # the previous dependency line ended with "or" ('|'): this one is an alternative
    virtual_for: list[str] | None = None  # provider lines (4-space indent) resolve the previous virtual dep
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            current = line.strip().removesuffix(suffix)
            deps.setdefault(current, [])
            in_group, virtual_for = False, None
            continue
        if current is None:
            continue
        if line.startswith("    "):  # a provider of the virtual package just named
            if virtual_for is not None:
                virtual_for.append(line.strip())
                virtual_for = None  # the first provider is enough
            continue
        kind, _, target = line.strip().lstrip("|").partition(": ")
        first_choice = not in_group
        in_group = line.lstrip().startswith("|")
        virtual_for = None
        if kind not in ("Depends", "PreDepends") or not first_choice:
            continue
        if target.startswith("<"):
            virtual_for = deps[current]
        else:
            deps[current].append(target)
    for name, items in deps.items():
        deps[name] = [d.removesuffix(suffix) for d in items if d.endswith(suffix)]
    return deps


def resolve_packages(arch: Arch, roots: tuple[str, ...] = ROOT_PACKAGES) -> list[str]:
    """The root packages and everything they (pre-)depend on for the board's architecture."""
    seen: set[str] = set()
    todo = [r for r in roots]
    while todo:
        batch = [p for p in dict.fromkeys(todo) if p not in seen and p not in SKIP_PACKAGES]
        todo = []
        if not batch:
            break
        seen.update(batch)
        text = _run(
            [
                "apt-cache",
                "depends",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
                *[f"{p}:{arch.debian}" for p in batch],
            ]
        ).stdout
        for deps in _parse_apt_depends(text, arch.debian).values():
            todo.extend(d for d in deps if d not in seen)
    return sorted(seen)


def _download_debs(arch: Arch, packages: list[str], folder: Path, show: bool, chunk: int = 7) -> list[Path]:
    """`apt-get download` in chunks: each call re-reads the package lists (~1.5 s), one per package is slow."""
    folder.mkdir(parents=True, exist_ok=True)
    bar = _progress(None, "board: apt-get download", total=len(packages), show=show)
    for start in range(0, len(packages), chunk):
        names = packages[start : start + chunk]
        _run(["apt-get", "download", *[f"{name}:{arch.debian}" for name in names]], cwd=folder)
        if bar is not None:
            bar.update(len(names))
    if bar is not None:
        bar.close()
    debs = []
    for name in packages:
        found = sorted(folder.glob(f"{name}_*_{arch.debian}.deb"))
        if len(found) != 1:
            raise TvmDeployError(f"apt-get download {name}:{arch.debian} left {len(found)} .deb files in {folder}")
        debs.append(found[0])
    return debs


def _wheel_pins() -> list[str]:
    pins = []
    for name in WHEELS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _download_wheels(arch: Arch, folder: Path, show: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for pin in _progress(_wheel_pins(), "board: pip download", show=show):
        name = pin.split("==")[0]
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            arch.wheel_platform,
            "--python-version",
            PYTHON.removeprefix("python"),
            "--dest",
            str(folder),
        ]
        result = subprocess.run([*cmd, pin], capture_output=True, text=True)
        if result.returncode != 0 and "==" in pin:
            # The host's exact version may have no aarch64 wheel; the newest one that has is next best.
            result = subprocess.run([*cmd, name], capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise TvmDeployError(f"pip download of an {arch.name} wheel of {name} failed: {last}")
    return sorted(folder.glob("*.whl"))


def _unpack_wheels(wheels: list[Path], site: Path, show: bool) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for wheel in _progress(wheels, "board: unzip wheels", show=show):
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if not member.endswith(SKIP_WHEEL_FILES):
                    archive.extract(member, site)


@dataclass(frozen=True)
class BoardRoot:
    """A built board: a Debian root for qemu's -L, and a site folder on its PYTHONPATH."""

    dir: Path
    arch: Arch

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def site(self) -> Path:
        return self.dir / "site"

    @property
    def python(self) -> Path:
        return self.root / "usr" / "bin" / PYTHON

    @property
    def server_script(self) -> Path:
        return self.dir / SERVER_SCRIPT

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    @property
    def built(self) -> bool:
        return (self.dir / BUILD_STAMP).is_file() and self.python.is_file()

    def command(self, *args: str) -> list[str]:
        """argv that runs the board's Python under qemu-user with the board root as its library prefix."""
        return [_need_tool(self.arch.qemu, "qemu-user-static"), "-L", str(self.root), str(self.python), *args]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LD_", "VIRTUAL_ENV"))}
        env.update(
            PYTHONPATH=str(self.site),
            PYTHONNOUSERSITE="1",
            TVM_USE_RUNTIME_LIB="1",  # only libtvm_runtime: the compiler library is not on the board
            TVM_BIND_THREADS="0",
        )
        return env


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One builder at a time per board folder (tests and a user may ask at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(arch: str = "aarch64", *, rebuild: bool = False, progress: bool = True) -> BoardRoot:
    """The board root, built on first use (Debian arm64 packages + aarch64 wheels) and cached."""
    board = BoardRoot(board_dir(arch), _arch(arch))
    _need_tool(board.arch.qemu, "qemu-user-static")
    _copy_server_script(board)
    if board.built and not rebuild:
        return board
    with _locked(board.dir):
        if board.built and not rebuild:
            return board
        if any(s.alive for s in status(arch)):
            raise TvmDeployError("board servers are running from this board root; stop them first (tvmdeploy board down)")
        started = time.time()
        (board.dir / BUILD_STAMP).unlink(missing_ok=True)
        # Downloads too: a folder holding two versions of a package would unpack both.
        for stale in (board.root, board.site, board.dir / "debs", board.dir / "wheels"):
            shutil.rmtree(stale, ignore_errors=True)
        _ensure_foreign_arch(board.arch)
        packages = resolve_packages(board.arch)
        debs = _download_debs(board.arch, packages, board.dir / "debs", progress)
        board.root.mkdir(parents=True, exist_ok=True)
        for deb in _progress(debs, "board: dpkg -x", show=progress):
            _run(["dpkg", "-x", str(deb), str(board.root)])
        wheels = _download_wheels(board.arch, board.dir / "wheels", progress)
        _unpack_wheels(wheels, board.site, progress)
        _precompile(board, progress)
        version = _run(board.command("-c", "import sys; print(sys.version.split()[0])"), env=board.env()).stdout.strip()
        stamp = {
            "arch": arch,
            "python": version,
            "debs": [d.name for d in debs],
            "wheels": [w.name for w in wheels],
            "build_s": round(time.time() - started, 1),
        }
        (board.dir / BUILD_STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return board


def _precompile(board: BoardRoot, show: bool) -> None:
    """Byte-compile on the host: same bytecode (Python 3.11), and it spares the emulated first import minutes."""
    import compileall

    stdlib = board.root / "usr" / "lib" / PYTHON
    for folder in _progress([stdlib, board.site], "board: compile .pyc", show=show):
        compileall.compile_dir(str(folder), quiet=2, workers=0 if (os.cpu_count() or 1) > 1 else 1)


def _copy_server_script(board: BoardRoot) -> None:
    board.dir.mkdir(parents=True, exist_ok=True)
    source = Path(__file__).with_name(SERVER_SCRIPT)
    if not board.server_script.is_file() or board.server_script.read_bytes() != source.read_bytes():
        shutil.copyfile(source, board.server_script)


# ---------------------------------------------------------------- servers


def _state_files(arch: str = "aarch64") -> list[Path]:
    folder = board_dir(arch) / "run"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def _pid_is_board(pid: int) -> bool:
    """The pid is alive and is still our server (pids are reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return SERVER_SCRIPT.encode() in cmdline


def status(arch: str = "aarch64") -> list[BoardServer]:
    """The board servers started from this machine; dead ones are reported once and their state removed."""
    servers = []
    for path in _state_files(arch):
        try:
            server = BoardServer(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
            continue
        server.alive = _pid_is_board(server.pid)
        if not server.alive:
            path.unlink(missing_ok=True)
        servers.append(server)
    return servers


def board_is_emulated(key: str, arch: str = "aarch64") -> bool:
    """True when a board server started here under emulation serves `key` (its timings are not the CPU's)."""
    return any(s.alive and s.emulated and s.key == key for s in status(arch))


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def _listening_port(log: Path) -> int | None:
    try:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("tvmdeploy-board: listening on "):
                return int(line.split()[3].rpartition(":")[2])
    except OSError:
        pass
    return None


def _registered(tracker: RpcEndpoint, key: str, port: int) -> bool:
    try:
        summary = tracker_summary(tracker, timeout_s=5.0)
    except TvmDeployError:
        return False
    return any(s.get("key") == f"server:{key}" and int(s["addr"][1]) == port for s in summary.get("server_info", []))


def start(
    *,
    arch: str = "aarch64",
    key: str = DEFAULT_KEY,
    tracker: RpcEndpoint | None = None,
    host: str = "127.0.0.1",
    port: int = 9090,
    count: int = 1,
    timeout_s: float = 600.0,
    progress: bool = True,
    tracker_wait_s: float = TRACKER_START_WAIT_S,
) -> list[BoardServer]:
    """Start `count` RPC servers with `key` on the emulated board; return once each listens (and is registered).

    A tracker that is still starting is waited for (up to `tracker_wait_s`); one that is not there
    fails now, not after the emulated start.
    """
    if tracker is not None:
        wait_for_tracker(tracker, tracker_wait_s)
    board = ensure_built(arch, progress=progress)
    board.run_dir.mkdir(parents=True, exist_ok=True)
    library = board.site / EXTRA_RUNTIME_LIB
    started: list[tuple[subprocess.Popen, Path, BoardServer]] = []
    next_port = port
    for index in range(count):
        log = board.run_dir / f"{key}-{int(time.time() * 1000)}-{index}.log"
        # Under qemu-user, bind() on a busy port can succeed and only listen() fails, which defeats
        # TVM's own port scan: pick a free port natively here and give the server exactly that one.
        server_port = _first_free_port(host, next_port)
        next_port = server_port + 1
        argv = board.command(
            str(board.server_script),
            "--host",
            host,
            "--port",
            str(server_port),
            "--port-end",
            str(server_port + 1),
            "--key",
            key,
            "--load-library",
            str(library),
            "--emulated-by",
            board.arch.qemu,
        )
        if tracker is not None:
            argv += ["--tracker", f"{tracker.host}:{tracker.port}"]
        with open(log, "wb") as out:
            # Own session: `stop` ends the server and the session processes it forked, as one group.
            proc = subprocess.Popen(
                argv, env=board.env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        server = BoardServer(
            pid=proc.pid,
            key=key,
            arch=arch,
            emulator=board.arch.qemu,
            host=host,
            port=0,
            tracker=f"{tracker.host}:{tracker.port}" if tracker else "",
            log=str(log),
            started=time.time(),
        )
        _write_state(board, server)
        started.append((proc, log, server))
    deadline = time.monotonic() + timeout_s
    try:
        for proc, log, server in started:
            _wait_ready(board, proc, log, server, tracker, deadline, timeout_s)
    except BaseException:
        for _, _, server in started:
            _terminate(server.pid)
            (board.run_dir / f"{server.pid}.json").unlink(missing_ok=True)
        raise
    return [server for _, _, server in started]


def _first_free_port(host: str, start: int, span: int = 100) -> int:
    """The first port from `start` on which this machine can listen now."""
    for candidate in range(start, start + span):
        with socket.socket() as sock:
            try:
                sock.bind((host, candidate))
                sock.listen(1)
            except OSError:
                continue
            return candidate
    raise TvmDeployError(f"no free port in {start}-{start + span - 1} on {host} for the board server")


def _write_state(board: BoardRoot, server: BoardServer) -> None:
    data = asdict(server)
    data.pop("alive")
    (board.run_dir / f"{server.pid}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _wait_ready(
    board: BoardRoot,
    proc: subprocess.Popen,
    log: Path,
    server: BoardServer,
    tracker: RpcEndpoint | None,
    deadline: float,
    timeout_s: float,
) -> None:
    """Until the server listens and (with a tracker) is registered; an error if it dies or the deadline passes."""
    while True:
        code = proc.poll()
        if code is not None:
            raise TvmDeployError(f"the board server exited with code {code} before it was ready: {_log_tail(log)}")
        if not server.port:
            server.port = _listening_port(log) or 0
            if server.port:
                _write_state(board, server)
        if server.port and (tracker is None or _registered(tracker, server.key, server.port)):
            return
        if time.monotonic() > deadline:
            where = f"register with the tracker {tracker.host}:{tracker.port}" if tracker and server.port else "listen"
            raise TvmDeployError(f"the board server did not {where} within {timeout_s:.0f} s (log: {log}): {_log_tail(log, 2)}")
        time.sleep(1.0)


def _terminate(pid: int, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    end = time.monotonic() + grace_s
    while time.monotonic() < end:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we are its parent (tests start and stop in one process)
        if not _pid_is_board(pid) or _is_zombie(pid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    # Session processes forked by the server stay in its process group; none may outlive it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop(*, arch: str = "aarch64", key: str | None = None) -> list[BoardServer]:
    """Stop the board servers started from here (all, or those with `key`); return what was stopped."""
    stopped = []
    for server in status(arch):
        if key is not None and server.key != key:
            continue
        if server.alive:
            _terminate(server.pid)
        (board_dir(arch) / "run" / f"{server.pid}.json").unlink(missing_ok=True)
        stopped.append(server)
    return stopped
