"""`tools/dev/bench_tuned.py` (the headline benchmark) on a tiny tuned model: JSON fields, parity, threading policies."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "dev" / "bench_tuned.py"


@pytest.fixture(scope="module")
def tiny_tuned(tmp_path_factory, tiny_classifier_factory, avx2_profile):
    from tvmdeploy.compile.tuning.driver import tune

    model = tiny_classifier_factory(tmp_path_factory.mktemp("model") / "tiny.onnx")
    result = tune(
        model,
        avx2_profile,
        trials=2,
        ops="all",
        auto_seed=False,
        log_dir=tmp_path_factory.mktemp("db") / "tiny",
        trials_per_iter=2,
        max_trials_per_task=2,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
    )
    return model, result.folder


@pytest.mark.parametrize("threading", ["sleep", "spin-in-run"])
def test_bench_tuned_reports_ratio_and_parity(tiny_tuned, tmp_path, threading):
    model, database = tiny_tuned
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--onnx",
            str(model),
            "--profile",
            "x86-avx2",
            "--tuning-log",
            str(database),
            "--runs",
            "5",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--threading",
            threading,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ratio TVM/ORT (medians)" in proc.stdout
    report = json.loads(out.read_text())
    assert report["threading"] == threading and report["profile"] == "x86-avx2"
    assert report["tasks_from_database"] >= 1
    assert report["max_abs_diff"] < 1e-4
    assert report["tvm"]["n"] >= 5 and report["ort"]["n"] == report["tvm"]["n"]
    assert report["ratio_tvm_over_ort"] == pytest.approx(report["tvm"]["median_ms"] / report["ort"]["median_ms"])
    assert report["tvm_spin_count"] == (0 if threading == "sleep" else 1000)


def test_bench_tuned_ab_times_every_build_against_ort_in_one_run(tiny_tuned):
    model, database = tiny_tuned
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--onnx",
            str(model),
            "--profile",
            "x86-avx2",
            "--ab",
            f"defaults,{database},none",
            "--runs",
            "4",
            "--warmup",
            "1",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split(" | ")[0].strip("| "): line for line in proc.stdout.splitlines() if line.startswith("| ") and "x |" in line}
    assert set(rows) == {"defaults", str(database), "none"}, proc.stdout
    assert "no log" in rows["defaults"] and f"from {database.name}" in rows[str(database)]
    for line in rows.values():
        assert float(line.split("max |diff| ")[1].split()[0]) < 1e-4
    assert "median of 4 interleaved runs" in proc.stdout


def test_bench_tuned_unknown_profile_is_one_line_error(tiny_tuned):
    model, _ = tiny_tuned
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--onnx", str(model), "--profile", "x86-nope"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_bench_tuned_card_table_and_chart(tiny_tuned, tmp_path):
    from tvmdeploy.compile.tuning.log_choice import host_profiles

    model, database = tiny_tuned
    profiles = host_profiles(("x86-avx512", "x86-avx2"))
    if not profiles:
        pytest.skip("no x86 profile runs on this machine")
    out, chart = tmp_path / "card.json", tmp_path / "card.png"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--card",
            "--card-models",
            str(model),
            "--tuning-log",
            str(database),
            "--runs",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
            str(out),
            "--plot",
            str(chart),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    assert table[0] == "| model | profile | TVM ms | ORT ms | TVM/ORT | tasks from log |"
    assert [row.split("|")[1:3] for row in table[2:]] == [[" tiny ", f" {p} "] for p in profiles]
    rows = json.loads(out.read_text())
    assert [r["profile"] for r in rows] == profiles
    for row, line in zip(rows, table[2:]):
        assert row["max_abs_diff"] < 1e-4 and row["tasks_from_database"] >= 1
        assert f"**{row['ratio_tvm_over_ort']:.2f}x**" in line
        assert f"{row['tasks_from_database']}/{row['tasks_total']} ({database.name})" in line
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_tuned_card_models_needs_card(tiny_tuned):
    model, _ = tiny_tuned
    proc = subprocess.run([sys.executable, str(SCRIPT), "--card-models", str(model)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --card-models needs --card"
