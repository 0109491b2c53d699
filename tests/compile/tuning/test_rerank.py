"""In-network reranking of tuning records: one record per task, chosen among the best few, applies with parity."""

import numpy as np
import pytest

from tvmdeploy.runtime.errors import TvmDeployError


def test_rerank_writes_one_in_network_choice_per_task_and_keeps_parity(history, avx2_profile, tmp_path):
    import onnxruntime as ort
    import tvm
    from tvm import relax

    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.compile.tuning.database import open_database
    from tvmdeploy.compile.tuning.rerank import rerank_in_network

    model, tuned = history
    calls = []
    result = rerank_in_network(
        model, avx2_profile, tuned.folder, tmp_path / "out", top_k=2, repeats=5, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(1, 2), (2, 2)]
    tuned_tasks = {o.info.name for o in tuned.outcomes if o.trials_after}
    assert {c.task for c in result.choices} == tuned_tasks
    for choice in result.choices:
        assert choice.ranks == 2 and choice.chosen in (0, 1)
        assert len(choice.in_network_us) == 2 and all(np.isfinite(t) and t > 0 for t in choice.in_network_us)
        assert choice.in_network_us[choice.chosen] == min(choice.in_network_us)
        assert choice.tuner_us[0] <= choice.tuner_us[1]  # ranks follow the tuner's order
    assert "changed" in result.table()
    exported = open_database(tmp_path / "out", readonly=True, quiet=True).get_all_tuning_records()
    assert len(exported) == result.records == len(tuned_tasks)

    mod, info = import_onnx(model)
    compiled = compile_relax(mod, avx2_profile, database_dir=tmp_path / "out")
    assert compiled.tasks_from_database == len(tuned_tasks)
    x = np.random.default_rng(1).standard_normal(info.input_shape).astype(np.float32)
    got = relax.VirtualMachine(compiled.executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {info.input_name: x})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_rerank_always_offers_each_tasks_default_schedule(history, avx2_profile, tmp_path):
    """A history seeded the default schedules (as `tune` does): each is a candidate even below the top k, timed in
    the network like the others, and exported as it is when it wins."""
    from tvmdeploy.compile.schedules.cpu import schedule_kernel
    from tvmdeploy.compile.tuning.database import open_database
    from tvmdeploy.compile.tuning.driver import tune
    from tvmdeploy.compile.tuning.rerank import rerank_in_network

    model, tuned = history
    seeded = tune(
        model,
        avx2_profile,
        trials=2,
        ops="all",
        auto_seed=False,
        seed_from=tuned.folder,
        log_dir=tmp_path / "db",
        trials_per_iter=2,
        max_trials_per_task=1,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        only=lambda info: "conv2d" in info.name,
    )
    result = rerank_in_network(model, avx2_profile, seeded.folder, tmp_path / "out", top_k=1, repeats=5)
    assert result.choices and all(c.default_rank is not None for c in result.choices)
    for choice in result.choices:
        assert choice.ranks == choice.default_rank + 1 and choice.ranks in (1, 2)  # appended unless it is the best
        assert all(np.isfinite(t) and t > 0 for t in choice.in_network_us)
    assert f"({sum(c.chose_default and c.chosen > 0 for c in result.choices)} the default schedule)" in result.summary()
    exported = open_database(tmp_path / "out", readonly=True, quiet=True).get_all_tuning_records()
    defaults = [str(r.trace) == str(schedule_kernel(r.workload.mod["main"], r.target).trace) for r in exported]
    assert len(exported) == len(result.choices) and sum(defaults) == sum(c.chose_default for c in result.choices)


def test_rerank_refuses_a_used_output_folder_and_an_empty_history(history, avx2_profile, tmp_path):
    from tvmdeploy.compile.tuning.rerank import rerank_in_network

    model, tuned = history
    with pytest.raises(TvmDeployError, match="already holds a database"):
        rerank_in_network(model, avx2_profile, tuned.folder, tuned.folder)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "database_tuning_record.json").write_text("")
    (tmp_path / "empty" / "database_workload.json").write_text("")
    with pytest.raises(TvmDeployError, match="has no record for any kernel"):
        rerank_in_network(model, avx2_profile, tmp_path / "empty", tmp_path / "out")


def test_cli_rerank_needs_export_best(history, capsys):
    from tvmdeploy.tools.cli.main import main

    model, tuned = history
    assert main(["tune", "--model", str(model), "--profile", "x86-avx2", "--rerank", "2"]) == 2
    assert "--rerank needs --export-best" in capsys.readouterr().err


def test_cli_tune_export_best_with_rerank(history, tmp_path, capsys):
    import shutil

    from tvmdeploy.tools.cli.main import main

    model, tuned = history
    folder = tmp_path / "history"
    shutil.copytree(tuned.folder, folder)
    out = tmp_path / "shipped"
    code = main(
        [
            "tune",
            "--model",
            str(model),
            "--profile",
            "x86-avx2",
            "--ops",
            "all",
            "--trials",
            "1",
            "--resume",
            "--no-baseline",
            "--no-auto-seed",
            "--no-progress",
            "--log-dir",
            str(folder),
            "--export-best",
            str(out),
            "--rerank",
            "2",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "exported the in-network fastest record of 2 tasks" in captured.out
    assert "| **2 timed tasks** |" in captured.out
    # The library returns its tables and summaries; the verb prints them where they always went.
    assert "kernel time x calls:" in captured.out and f"database: {folder}\n" in captured.out
    assert " FLOPs%  time%  ms/call tune\n" in captured.err  # the task table, before the search
    assert "reranked 2 tasks in the network: " in captured.err
    assert (out / "tuning_meta.json").exists() and (out / "database_tuning_record.json").read_text().count("\n") == 2
