"""`tools/dev/bench_int8.py`: int8 build vs ONNX Runtime int8 vs both fp32 runs, one row per model, on a tiny net."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "tools" / "dev" / "bench_int8.py"


def test_bench_int8_times_four_runtimes_and_checks_int8_parity(tiny_onnx, calibration_photos, tmp_path):
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--calibration",
            str(calibration_photos),
            "--models",
            str(tiny_onnx()),
            "--profile",
            "x86-avx2",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (row,) = json.loads(out.read_text())
    for name in ("tvm_int8", "ort_int8", "tvm_fp32", "ort_fp32"):
        assert row[name]["n"] >= 3 and row[name]["median_ms"] > 0
    assert row["output_step"] > 0 and row["max_abs_diff_int8"] <= row["output_step"] / 2  # the same int8 logits
    assert row["int8_over_ort_int8"] == row["tvm_int8"]["median_ms"] / row["ort_int8"]["median_ms"]
    assert "| tiny0 |" in done.stdout and "int8 / ORT int8" in done.stdout


def test_bench_int8_says_what_is_wrong_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--calibration", str(tmp_path / "none")], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and done.stderr.strip().startswith("error: calibration folder not found")
