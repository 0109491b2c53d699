"""MetaSchedule builder and runner for tuning: fast worker start-up, profile-aware export, no thread pinning."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

# Names of our global functions inside builder workers (registered by `init_worker`).
F_BUILD = "tvmdeploy.ms.build"
F_EXPORT = "tvmdeploy.ms.export"
_CROSS_ENV = "TVMDEPLOY_MS_CROSS_COMPILER"  # the export's C++ compiler, inherited by the workers


def _build(mod, target, _params):
    """MetaSchedule's default build minus `import tvm.s_tir.tensor_intrin`, which costs a fresh worker
    50-90 s and made every candidate hit the builder timeout (TVM_NOTES item 4). CPU/CUDA schedules
    from the default rules need no tensor intrinsics."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    # The weight repacking a schedule asks for is done once at build time, not in the timed kernel.
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


def _export(rt_mod) -> str:
    """A shared library the runner can load: a tar for local runs, a cross-linked .so for a board."""
    import tempfile

    folder = tempfile.mkdtemp(prefix="tvmdeploy-ms-")
    cross = os.environ.get(_CROSS_ENV)
    if cross:
        from tvm.support import cc

        path = os.path.join(folder, "candidate.so")
        rt_mod.export_library(path, fcompile=cc.cross_compiler(cross))
        return path
    from tvm.support.tar import tar

    path = os.path.join(folder, "candidate.tar")
    rt_mod.export_library(path, fcompile=tar)
    return path


def init_worker() -> None:
    """Builder worker initializer: registers our build/export functions (cheap: no tensor intrinsics)."""
    import tvm_ffi

    tvm_ffi.register_global_func(F_BUILD, _build, override=True)
    tvm_ffi.register_global_func(F_EXPORT, _export, override=True)


def make_builder(max_workers: int, cross_compiler: str | None = None, timeout_sec: float = 60.0) -> Any:
    from tvm.s_tir import meta_schedule as ms

    if cross_compiler:
        os.environ[_CROSS_ENV] = cross_compiler
    else:
        os.environ.pop(_CROSS_ENV, None)
    return ms.builder.LocalBuilder(
        max_workers=max_workers,
        timeout_sec=timeout_sec,
        f_build=F_BUILD,
        f_export=F_EXPORT,
        initializer=init_worker,
    )


def measure_config(quick: bool = False) -> Any:
    from tvm.s_tir import meta_schedule as ms

    # min_repeat_ms keeps microsecond kernels from being timed by a single noisy call; no cache flush
    # because in the real network each kernel's input was just written by the previous one.
    return ms.runner.EvaluatorConfig(number=3 if quick else 5, repeat=1, min_repeat_ms=20 if quick else 50, enable_cpu_cache_flush=False)


def make_local_runner(threads: int, quick: bool = False, timeout_sec: float = 30.0) -> Any:
    """A local runner timing kernels the way the deployed model runs: `threads` threads, unpinned."""
    from tvm.s_tir import meta_schedule as ms

    # The runner's worker processes inherit this environment. TVM pins its pool threads to cores by
    # default; on these shared VMs that cost ~2x end to end (TVM_NOTES item 5), so measure unpinned.
    os.environ["TVM_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TVM_BIND_THREADS", "0")
    return ms.runner.LocalRunner(timeout_sec=timeout_sec, evaluator_config=measure_config(quick))


def build_and_run(builder, runner, items: list, target, device: str) -> list:
    """Build and time (module, args_info) pairs outside a search: run_secs per item, None if it failed.

    For candidates the search did not propose: untuned kernels, seed schedules from another database.
    """
    import shutil
    from pathlib import Path

    from tvm.s_tir import meta_schedule as ms

    built = builder.build([ms.builder.BuilderInput(mod, target) for mod, _ in items])
    runnable, owners = [], []
    for index, ((_, args_info), outcome) in enumerate(zip(items, built)):
        if outcome.error_msg is None:
            runnable.append(ms.runner.RunnerInput(outcome.artifact_path, device, args_info))
            owners.append(index)
    run_secs: list = [None] * len(items)
    for index, future in zip(owners, runner.run(runnable)):
        ran = future.result()
        if ran.error_msg is None and ran.run_secs:
            run_secs[index] = ran.run_secs
    for outcome in built:
        if outcome.artifact_path:
            shutil.rmtree(Path(outcome.artifact_path).parent, ignore_errors=True)
    return run_secs


def make_rpc_runner(tracker: str, key: str, max_workers: int | None = None, quick: bool = False) -> Any:
    """A runner that times candidates on the boards registered with an RPC tracker under `key`.

    A farm of boards: one runner worker per board registered under the key (`max_workers=None`), each
    asking the tracker for a free board per measurement, so a batch is timed on all of them at once.
    The tracker does the distribution; a board that is busy or gone only delays its queued requests.
    """
    from tvm.s_tir import meta_schedule as ms

    from tvmdeploy.runtime.errors import TvmDeployError
    from tvmdeploy.runtime.rpc import RpcEndpoint, servers_for_key, wait_for_tracker

    endpoint = RpcEndpoint.tracker(tracker, key)
    boards = servers_for_key(wait_for_tracker(endpoint), key)
    if not boards:
        raise TvmDeployError(
            f"no board with key '{key}' is registered at tracker {endpoint.address}; "
            "start one with `tvmdeploy board up` or `tvmdeploy rpc server`"
        )
    workers = max_workers or len(boards)
    log.warning("measuring on %d board(s) with key '%s' at %s (%d runner worker(s))", len(boards), key, endpoint.address, workers)
    rpc_config = ms.runner.RPCConfig(tracker_host=endpoint.host, tracker_port=endpoint.port, tracker_key=key, session_timeout_sec=600)
    return ms.runner.RPCRunner(rpc_config=rpc_config, evaluator_config=measure_config(quick), max_workers=workers)


def load_cpu_tensor_intrinsics(arch: str) -> None:
    """Register only the CPU tensor intrinsics of `arch`, not all of `tvm.s_tir.tensor_intrin`.

    `TuneContext` imports the whole package, whose CUDA/ROCm parts take 50-90 s here; the CPU
    schedule rules only ever ask for the x86 (VNNI/AVX-512) or Arm (dot-product) ones. An
    already imported package is left alone.
    """
    import importlib
    import importlib.util
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name not in sys.modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.submodule_search_locations is None:
            return
        package = types.ModuleType(name)
        package.__path__ = list(spec.submodule_search_locations)  # submodules still import normally
        package.__spec__ = spec
        sys.modules[name] = package
    importlib.import_module(f"{name}.{'arm_cpu' if arch == 'aarch64' else 'x86'}")
