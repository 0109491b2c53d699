"""MetaSchedule tuning: tiny runs that write, resume, survive SIGKILL and corrupt lines, and apply."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx_graphs import save_graph

from tvmdeploy.runtime.errors import TvmDeployError

RECORDS = "database_tuning_record.json"


def inverted_residual_onnx(path: Path, channels: int = 8, outputs: int = 16) -> Path:
    """stem Conv -> ReLU6 -> depthwise Conv -> ReLU6 -> pointwise Conv -> pool -> Gemm, 16x16 input."""
    rng = np.random.default_rng(0)

    def tensor(name, shape):
        return numpy_helper.from_array((0.3 * rng.standard_normal(shape)).astype(np.float32), name)

    c, o = channels, outputs
    inits = [
        tensor("w1", (c, 3, 3, 3)),
        tensor("b1", (c,)),
        tensor("w2", (c, 1, 3, 3)),
        tensor("b2", (c,)),
        tensor("w3", (o, c, 1, 1)),
        tensor("b3", (o,)),
        tensor("fc", (10, o)),
        tensor("fcb", (10,)),
        numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
        numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=c),
        helper.make_node("Clip", ["c2", "lo", "hi"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"]),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["logits"], transB=1),
    ]
    return save_graph(path, nodes, {"input": [1, 3, 16, 16]}, {"logits": [1, 10]}, inits, name="tiny_ir")


@pytest.fixture(scope="module")
def profile(avx2_profile):
    return avx2_profile


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return inverted_residual_onnx(tmp_path_factory.mktemp("tiny") / "tiny_ir.onnx")


@pytest.fixture(scope="module")
def tuned(tiny_model, profile, tmp_path_factory):
    """One tiny tuning run shared by the tests: depthwise + pointwise, 4 trials each."""
    from tvmdeploy.compile.tuning.driver import tune

    folder = tmp_path_factory.mktemp("db") / "tiny"
    result = tune(
        tiny_model,
        profile,
        trials=8,
        ops="depthwise,pointwise",
        log_dir=folder,
        trials_per_iter=4,
        max_trials_per_task=4,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        auto_seed=False,
    )
    return result


def _record_keys(folder: Path) -> list[tuple[int, str]]:
    """(workload hash, printed trace) of every record, as the build would load them."""
    import tvm_ffi

    from tvmdeploy.compile.tuning.database import open_database

    database = open_database(folder, readonly=True, quiet=True)
    return [(int(tvm_ffi.structural_hash(r.workload.mod)), str(r.trace)) for r in database.get_all_tuning_records()]


def test_task_classes_of_tiny_model(tuned):
    classes = sorted(o.info.op_class for o in tuned.outcomes)
    assert {"stem", "depthwise", "pointwise", "dense"} <= set(classes)


def test_tiny_tuning_writes_records_only_for_selected_ops(tuned):
    assert (tuned.folder / RECORDS).stat().st_size > 0
    tuned_classes = {o.info.op_class for o in tuned.outcomes if o.trials_after > 0}
    assert tuned_classes == {"depthwise", "pointwise"}
    assert tuned.trials_run == 8
    assert tuned.remeasured == 0


def test_records_apply_and_keep_parity(tuned, tiny_model, profile):
    import onnxruntime as ort
    import tvm
    from tvm import relax

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax

    mod, info = import_onnx(tiny_model)
    compiled = compile_relax(mod, profile, database_dir=tuned.folder)
    assert compiled.tasks_from_database == 2
    assert compiled.tasks_total == len(tuned.outcomes)
    x = np.random.default_rng(1).standard_normal(info.input_shape).astype(np.float32)
    vm = relax.VirtualMachine(compiled.executable, tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_corrupt_lines_are_reported_with_line_number_and_skipped(tuned, tmp_path, caplog, monkeypatch):
    from tvmdeploy.compile.tuning.database import REJECTED_FILE, open_database

    folder = tmp_path / "db"
    shutil.copytree(tuned.folder, folder, ignore=shutil.ignore_patterns("logs"))
    good = _record_keys(folder)
    lines = (folder / RECORDS).read_text().splitlines(keepends=True)
    torn = lines[0][: len(lines[0]) // 2]  # what a kill in the middle of a write leaves
    (folder / RECORDS).write_text(lines[0] + "{not json\n" + "".join(lines[1:]) + torn)

    monkeypatch.setattr(logging.getLogger("tvmdeploy"), "propagate", True)  # even after a CLI run in this process
    with caplog.at_level(logging.WARNING, logger="tvmdeploy"):
        database = open_database(folder, readonly=True)
    err = caplog.text  # the library logs warnings; the CLI shows them on stderr
    assert f"{RECORDS}:2: corrupt record line skipped" in err
    assert f"{RECORDS}:{len(lines) + 2}: corrupt record line skipped" in err
    assert len(database.get_all_tuning_records()) == len(good)
    assert "{not json" in (folder / RECORDS).read_text()  # readonly: the files are untouched

    open_database(folder)  # writable: the bad lines leave the files, kept aside for inspection
    assert "{not json" not in (folder / RECORDS).read_text()
    assert "{not json" in (folder / REJECTED_FILE).read_text()
    assert sorted(_record_keys(folder)) == sorted(good)


def test_a_record_that_does_not_replay_on_its_workload_is_set_aside_not_fatal(tuned, tmp_path, caplog, monkeypatch):
    """Valid JSON whose schedule names a block its workload lacks (what a seed filed under another model's copy of
    the kernel once left): TVM refuses the whole folder for it; we skip it and keep the rest."""
    import json

    from tvmdeploy.compile.tuning.database import REJECTED_FILE, open_database

    folder = tmp_path / "db"
    shutil.copytree(tuned.folder, folder, ignore=shutil.ignore_patterns("logs"))
    good = _record_keys(folder)
    lines = (folder / RECORDS).read_text().splitlines(keepends=True)
    index, record = json.loads(lines[0])
    get_block = next(inst for inst in record[0][0] if inst[0] == "GetSBlock")
    get_block[2][0] = "no_such_block"
    (folder / RECORDS).write_text("".join(lines) + json.dumps([index, record]) + "\n")

    monkeypatch.setattr(logging.getLogger("tvmdeploy"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="tvmdeploy"):
        database = open_database(folder, readonly=True)
    assert f"{RECORDS}: valid record #{len(lines) + 1} skipped: its schedule does not replay" in caplog.text
    assert len(database.get_all_tuning_records()) == len(good)
    assert "no_such_block" in (folder / RECORDS).read_text()  # readonly: untouched

    assert len(open_database(folder).get_all_tuning_records()) == len(good)  # writable: set aside for inspection
    assert "no_such_block" not in (folder / RECORDS).read_text()
    assert "no_such_block" in (folder / REJECTED_FILE).read_text()
    assert sorted(_record_keys(folder)) == sorted(good)


def test_parse_ops():
    from tvmdeploy.compile.tuning.tasks import OP_CLASSES, parse_ops

    assert parse_ops(None) == ("depthwise", "pointwise")
    assert parse_ops("all") == OP_CLASSES
    assert parse_ops("stem, dense") == ("stem", "dense")
    with pytest.raises(TvmDeployError, match="unknown class"):
        parse_ops("depthwise,winograd")


def test_existing_database_needs_resume(tuned, tiny_model, profile):
    from tvmdeploy.compile.tuning.driver import tune

    with pytest.raises(TvmDeployError, match="pass resume to continue them or log_dir for a new database") as info:
        tune(tiny_model, profile, trials=8, log_dir=tuned.folder, progress_bar=False)
    assert info.value.param == "resume"


def test_resume_after_sigkill_loses_and_repeats_nothing(tiny_model, profile, tmp_path):
    from tvmdeploy.compile.tuning.driver import tune

    folder = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "tvmdeploy.tools.cli",
        "tune",
        "--model",
        str(tiny_model),
        "--profile",
        "x86-avx2",
        "--ops",
        "depthwise,pointwise",
        "--trials",
        "200",
        "--trials-per-iter",
        "2",
        "--no-baseline",
        "--no-auto-seed",
        "--no-progress",
        "--log-dir",
        str(folder),
    ]
    with open(tmp_path / "tune.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            path = folder / RECORDS
            if path.exists() and path.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "tune.log").read_text()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)  # the tuner and its builder/runner workers, no cleanup
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = _record_keys(folder)
    assert len(before) >= 2

    result = tune(
        tiny_model,
        profile,
        trials=len(before) + 2,
        ops="depthwise,pointwise",
        resume=True,
        log_dir=folder,
        trials_per_iter=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        auto_seed=False,
    )
    after = _record_keys(folder)
    assert set(before) <= set(after)  # every finished record kept
    assert len(set(after)) == len(after)  # no candidate recorded twice
    assert result.remeasured == 0  # ...nor sent to the runner again
    assert result.trials_run == 2 and len(after) == len(before) + 2


def test_sigterm_stops_cleanly_and_keeps_records(tiny_model, tmp_path):
    folder = tmp_path / "stopped"
    command = [
        sys.executable,
        "-m",
        "tvmdeploy.tools.cli",
        "tune",
        "--model",
        str(tiny_model),
        "--profile",
        "x86-avx2",
        "--ops",
        "depthwise,pointwise",
        "--trials",
        "200",
        "--trials-per-iter",
        "2",
        "--no-baseline",
        "--no-progress",
        "--log-dir",
        str(folder),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if (folder / RECORDS).exists() and (folder / RECORDS).read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    assert proc.returncode == 130, text[-2000:]
    assert "interrupted; --resume continues" in text
    assert "Segfault" not in text and "terminate" not in text
    assert len(_record_keys(folder)) >= 1


def test_seed_from_another_database_remeasures_its_best_schedules(tuned, tiny_model, tmp_path, caplog):
    from tvmdeploy.compile.tuning.database import open_database
    from tvmdeploy.compile.tuning.driver import tune
    from tvmdeploy.compile.tuning.search import from_search_space
    from tvmdeploy.targets import load_profile

    # The real use: an AVX2 log warm-starts an AVX-512 one (workloads are target-independent).
    avx512 = load_profile("x86-avx512")
    target = avx512 if avx512.runs_on_this_machine else load_profile("x86-avx2")
    folder = tmp_path / "seeded"
    # 2 tuned tasks x top-2 seeds + 2 default schedules = 6 measurements: over the budget, so no search runs.
    result = tune(
        tiny_model,
        target,
        trials=4,
        ops="depthwise,pointwise",
        log_dir=folder,
        seed_from=tuned.folder,
        seed_top_k=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
    )
    assert "seeded 4 records for 2 tasks" in caplog.text  # the library logs it; the CLI shows warnings
    assert result.trials_run == 0
    seeded = _record_keys(folder)
    records = open_database(folder, readonly=True, quiet=True).get_all_tuning_records()
    from_log = {key for key, r in zip(seeded, records) if from_search_space(r.trace)}
    assert len(from_log) == 4 and from_log <= set(_record_keys(tuned.folder))  # the seed's own schedules
    assert len(seeded) == 6  # and this target's default schedule of each of the 2 tasks, measured too
    assert {str(r.target.attrs["mcpu"]) for r in records} == {target.target["mcpu"]}  # timed for this target

    tune(
        tiny_model,
        target,
        trials=4,
        ops="depthwise,pointwise",
        log_dir=folder,
        resume=True,
        seed_from=tuned.folder,
        seed_top_k=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
    )
    assert sorted(_record_keys(folder)) == sorted(seeded)  # a resumed run does not time its seeds again


def test_tuning_starts_from_the_default_schedules_and_stops_at_the_time_budget(tiny_model, profile, tmp_path):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.schedules.cpu import schedule_kernel
    from tvmdeploy.compile.tuning.database import open_database
    from tvmdeploy.compile.tuning.driver import tune

    folder = tmp_path / "budget"
    result = tune(
        tiny_model,
        profile,
        trials=100000,
        ops="depthwise,pointwise",
        log_dir=folder,
        trials_per_iter=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        time_budget_min=0.3,
    )
    assert result.out_of_time and not result.interrupted
    records = open_database(folder, readonly=True, quiet=True).get_all_tuning_records()
    # (Seeds of similar workloads may be default schedules of other shapes, refitted: not these.)
    defaults = [r for r in records if str(r.trace) == str(schedule_kernel(r.workload.mod["main"], r.target).trace)]
    assert len(defaults) == 2  # one default-schedule record for each selected task, measured first
    assert len(records) > len(defaults)  # and the search ran after them, within the budget
    compiled = compile_relax(import_onnx(tiny_model)[0], profile, database_dir=folder)
    assert compiled.tasks_from_database == 2  # the records (default or searched) replay in the build


def test_resume_continues_a_packed_history(tuned, tiny_model, profile, tmp_path):
    from tvmdeploy.compile.tuning.database import pack_history
    from tvmdeploy.compile.tuning.driver import tune

    folder = tmp_path / "packed"
    shutil.copytree(tuned.folder, folder, ignore=shutil.ignore_patterns("logs"))
    before = _record_keys(folder)
    pack_history(folder)  # as a history is kept in the repository
    result = tune(
        tiny_model,
        profile,
        trials=len(before) + 2,
        ops="depthwise,pointwise",
        resume=True,
        log_dir=folder,
        trials_per_iter=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        auto_seed=False,
    )
    after = _record_keys(folder)
    assert set(before) <= set(after) and result.trials_run == 2 and len(after) == len(before) + 2


def test_a_second_tuner_on_the_same_database_refuses_before_extracting_tasks(tiny_model, profile, tmp_path, monkeypatch):
    from tvmdeploy.compile.tuning import driver
    from tvmdeploy.compile.tuning.database import lock_database

    def extraction(*_args):
        raise AssertionError("the tasks were extracted (tens of seconds) before the lock was tried")

    monkeypatch.setattr(driver, "_prepare_tasks", extraction)
    folder = tmp_path / "busy"
    with lock_database(folder):  # what a running `tune` holds
        with pytest.raises(TvmDeployError, match="is being written by PID"):
            driver.tune(tiny_model, profile, trials=4, log_dir=folder, measure_baseline=False, progress_bar=False)
    assert not (folder / RECORDS).exists()  # the refused run wrote nothing


def test_never_tuned_workloads_start_from_the_schedules_of_similar_ones(tuned, profile, tmp_path, caplog):
    """A wider net shares no workload with the tuned one: its depthwise and pointwise tasks get the narrow net's
    searched schedules, tile sizes refitted to their loops, timed here; the build applies them with parity."""
    import onnxruntime as ort
    import tvm
    from tvm import relax

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning.database import open_database
    from tvmdeploy.compile.tuning.driver import _measurers, _write_meta, prepared_tasks
    from tvmdeploy.compile.tuning.search import from_search_space
    from tvmdeploy.compile.tuning.seeding import seed_similar

    wide = inverted_residual_onnx(tmp_path / "wide.onnx", channels=24, outputs=40)
    infos = [i for i in prepared_tasks(wide, profile)[1] if i.op_class in ("depthwise", "pointwise")]
    narrow = {o.info.shash for o in tuned.outcomes}
    assert len(infos) == 2 and not {i.shash for i in infos} & narrow  # nothing to seed from as it is
    folder = tmp_path / "wide-db"
    _write_meta(folder, profile, infos, "wide", "tasks-wide")
    database = open_database(folder)
    builder, runner = _measurers(profile, None, None, True)
    result = seed_similar(database, [tuned.folder], infos, builder, runner, "cpu", per_task=2)
    assert result.tasks == 2 and result.measured >= 2 and "never-tuned tasks" in caplog.text
    records = open_database(folder, readonly=True, quiet=True).get_all_tuning_records()
    assert len(records) == result.measured and all(from_search_space(r.trace) for r in records)
    again = seed_similar(database, [tuned.folder], infos, builder, runner, "cpu")
    assert again.measured == 0  # tasks with records are not seeded again (a resumed run)

    mod, info = import_onnx(wide)
    compiled = compile_relax(mod, profile, database_dir=folder)
    assert compiled.tasks_from_database == 2
    x = np.random.default_rng(1).standard_normal(info.input_shape).astype(np.float32)
    got = relax.VirtualMachine(compiled.executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(str(wide), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_seed_from_a_folder_without_database_is_a_user_error(tiny_model, profile, tmp_path):
    from tvmdeploy.compile.tuning.driver import tune

    with pytest.raises(TvmDeployError, match="has no database_tuning_record.json"):
        tune(
            tiny_model,
            profile,
            trials=4,
            log_dir=tmp_path / "db",
            seed_from=tmp_path / "nothing",
            measure_baseline=False,
            progress_bar=False,
        )


def test_log_from_another_pipeline_version_applies_with_a_warning(tuned, tiny_model, profile, tmp_path, caplog):
    import json

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning.database import META_FILE

    folder = tmp_path / "db"
    shutil.copytree(tuned.folder, folder, ignore=shutil.ignore_patterns("logs"))
    meta = json.loads((folder / META_FILE).read_text())
    meta["pipeline"] = "nchw-0"
    (folder / META_FILE).write_text(json.dumps(meta))
    mod, _ = import_onnx(tiny_model)
    compiled = compile_relax(mod, profile, database_dir=folder)
    assert "was made by pipeline 'nchw-0'" in caplog.text and "(2/7 tasks)" in caplog.text  # the CLI shows warnings
    assert compiled.tasks_from_database == 2


def test_auto_applies_a_shipped_log_only_when_tuned_on_this_cpu_kind(tuned, tiny_model, profile, tmp_path, monkeypatch):
    """The build's default: a fitting shipped log tuned on another CPU kind gives way to the default schedules
    (said why, and `shipped` still applies it); one tuned on this CPU kind is applied."""
    import json

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning import log_choice
    from tvmdeploy.compile.tuning.database import META_FILE
    from tvmdeploy.compile.tuning.log_choice import LogWord

    folder = tmp_path / "logs" / profile.name / tuned.folder.name
    shutil.copytree(tuned.folder, folder, ignore=shutil.ignore_patterns("logs"))
    monkeypatch.setattr(log_choice, "default_logs_root", lambda: tmp_path / "logs")
    meta = json.loads((folder / META_FILE).read_text())
    host = log_choice.cpu_record()
    elsewhere = {"vendor": "OtherVendor", "model_name": "Some CPU", "family": "99", "mcpu": "other-cpu"}
    mod, _ = import_onnx(tiny_model)
    notes = []
    auto, shipped = LogWord.AUTO.value, LogWord.SHIPPED.value
    for tuned_on, word, applied in [(elsewhere, auto, False), (elsewhere, shipped, True), (host, auto, True)]:
        (folder / META_FILE).write_text(json.dumps({**meta, log_choice.TUNED_ON: tuned_on}))
        compiled = compile_relax(mod, profile, database_dir=word)
        assert (compiled.database_dir == folder) is applied, (tuned_on, word)
        assert compiled.tasks_from_database == (2 if applied else 0)
        notes.append(compiled.log_note)
    assert notes[0] == (
        f"shipped log {folder.name} left out: tuned on Some CPU (mcpu other-cpu), another CPU kind "
        "than this one; default schedules instead (`--tuning-log shipped` applies it)"
    )
    assert notes[1:] == ["", ""]
