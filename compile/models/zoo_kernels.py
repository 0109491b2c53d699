"""Which kernels each zoo model compiles to (its tuning-log key), kept as data so `tvmdeploy zoo` stays light.

A model's kernel set (its MetaSchedule tasks, and the model key that names its log folder) is only known
after exporting it with torch and lowering it with TVM, about half a minute per model. `tools/dev/tune_card.py`
does that anyway, so it records the result in `zoo_kernels.json` next to this file (`tools/dev/tune_card.py
--index-only` refreshes it without tuning). `tvmdeploy zoo` then reads that file plus the shipped logs'
workload files (compile/tuning/log_choice.py) to show which shipped log covers each row: no torch, no TVM.

File layout: {"profiles": {PROFILE: {ZOO_NAME: {"key", "pipeline", "kernels", "glue", "merged"}}}}; `kernels`
are the structural hashes of the conv/dense tasks (what the key and the log search use), `glue` those of the
other tasks (input transpose, pooling, flatten), `merged` those of the tasks the build merges into blocks (no
record applies to them, so coverage leaves them out). Entries are per profile because lowering depends on the profile
(CPU NHWC vs GPU NCHW); the x86 profiles give identical sets today.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError

INDEX_FILE = Path(__file__).resolve().with_name("zoo_kernels.json")
_NOTE = (
    "written by tools/dev/tune_card.py (compile/models/zoo_kernels.py): each zoo model's tuning-log key and task "
    "hashes per profile, so `tvmdeploy zoo` can show log coverage without torch or TVM"
)

log = logging.getLogger(__name__)


def load_index(path: Path | None = None) -> dict:
    """The index as a dict; an absent file is an empty index (every row then shows 'not indexed')."""
    path = INDEX_FILE if path is None else Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"profiles": {}}
    except (OSError, ValueError) as exc:
        raise TvmDeployError(f"cannot read the zoo kernel index {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise TvmDeployError(f"cannot read the zoo kernel index {path}: no 'profiles' object")
    return data


def entry(profile: str, name: str, path: Path | None = None) -> dict | None:
    """The index entry of zoo model `name` lowered for `profile`, if recorded."""
    return load_index(path)["profiles"].get(profile, {}).get(name)


def describe(infos: list, pipeline: str) -> dict:
    """Index entry from the TaskInfo list of `tuning.prepared_tasks` (what tune_card has at hand)."""
    from tvmdeploy.compile.tuning.tasks import model_key

    return {
        "key": model_key(infos),
        "pipeline": pipeline,
        "kernels": sorted(i.shash for i in infos if i.op_class != "other"),
        "glue": sorted(i.shash for i in infos if i.op_class == "other"),
        "merged": sorted(i.shash for i in infos if i.merged),
    }


def compute(name: str, profile, workdir: Path) -> dict:
    """Export zoo model `name` (seeded random weights: keys never depend on weights) and describe its tasks."""
    from tvmdeploy.compile.models.export import export_onnx
    from tvmdeploy.compile.pipeline import PIPELINE_VERSION
    from tvmdeploy.compile.tuning.driver import prepared_tasks

    onnx_path = Path(workdir) / f"{name}.onnx"
    if not onnx_path.is_file():
        export_onnx(name, onnx_path, seed=0)
    return describe(prepared_tasks(onnx_path, profile)[1], PIPELINE_VERSION)


def record(profile: str, name: str, value: dict, path: Path | None = None) -> None:
    """Store one entry (atomic rewrite; other profiles and models are kept)."""
    path = INDEX_FILE if path is None else Path(path)
    data = load_index(path)
    data["note"] = _NOTE
    profiles = data["profiles"]
    profiles.setdefault(profile, {})[name] = value
    data["profiles"] = {p: dict(sorted(models.items())) for p, models in sorted(profiles.items())}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    log.info("zoo kernel index: %s on %s is %s", name, profile, value["key"])


def shared_keys(profile: str, path: Path | None = None) -> dict[str, list[str]]:
    """model key -> the zoo models with exactly that kernel set (one log serves them all)."""
    groups: dict[str, list[str]] = {}
    for name, value in load_index(path)["profiles"].get(profile, {}).items():
        groups.setdefault(value["key"], []).append(name)
    return groups


def coverage(name: str, profile: str, path: Path | None = None, logs_root: Path | None = None) -> dict | None:
    """How the shipped logs of `profile` cover zoo model `name`: {"key", "log", "covered", "total", "why"}.

    `log` is the folder `--tuning-log shipped` would pick (None: no log fits; then covered is 0); covered/total
    count the model's tasks with a record in it, as `build` reports them (merged kernels left out); `applied`: whether the default
    (`auto`) applies it, i.e. it was tuned on this or a kin core or records no CPU. None when the model is not indexed.
    No TVM: the log's CPU is compared without LLVM's mcpu name, so only the same vendor, family and model number
    counts as this CPU kind: a kin core's log, which `build` ranks first and applies, ranks here with the foreign ones.
    """
    from tvmdeploy.compile.tuning import log_choice
    from tvmdeploy.runtime.cpu_check import host_cpu_info

    value = entry(profile, name, path)
    if value is None:
        return None
    if logs_root is None:
        logs_root = log_choice.default_logs_root()
    tasks = (set(value["kernels"]) | set(value["glue"])) - set(value.get("merged", ()))
    logs, fit = log_choice.fitting_logs(Path(logs_root) / profile, value["key"], set(value["kernels"]))
    result = {"key": value["key"], "log": None, "covered": 0, "total": len(tasks), "why": "no shipped log fits", "applied": False}
    if logs:
        host = host_cpu_info()
        folder, why = log_choice.choose_log(logs, host)
        result.update(
            log=folder.name,
            covered=len(tasks & log_choice.log_workloads(folder)),
            why=f"{fit}; {why}",
            applied=log_choice.left_out_by_auto(folder, host) is None,
        )
    return result
