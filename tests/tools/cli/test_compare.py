"""`tvmdeploy compare` end to end on a tiny model: table, JSON/CSV, chart, failed rows, per-kernel breakdown."""

import json

import pytest

from tvmdeploy.tools.cli.compare import format_csv, format_markdown
from tvmdeploy.tools.cli.main import main

FAST = ["--runs", "3", "--warmup", "1", "--min-seconds", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_classifier_factory):
    return tiny_classifier_factory(tmp_path_factory.mktemp("model") / "tiny.onnx")


def test_compare_json_with_failures_chart_and_breakdown(capsys, tmp_path, tiny_model):
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "x86-avx2",
            f"{tmp_path}/nope@rpc=127.0.0.1:1",
            "x86-avx2@rpc=127.0.0.1:1",
            "--model",
            str(tiny_model),
            "-o",
            str(out),
            "--baselines",
            "onnxruntime,pytorch",
            "--format",
            "json",
            "--breakdown",
            "x86-avx2",
            "--rpc-timeout",
            "3",
            *FAST,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    rows = {(r["label"], r["status"]) for r in report["rows"]}
    assert ("TVM x86-avx2", "ok") in rows
    assert any(r["kind"] == "onnxruntime" and r["status"] == "ok" for r in report["rows"])
    assert any(r["kind"] == "pytorch" and r["status"] == "skipped" for r in report["rows"])
    failed = [r for r in report["rows"] if r["status"] == "failed"]
    assert len(failed) == 2 and all(r["error"] for r in failed)
    remote_failure = next(r for r in failed if r["label"] == "TVM x86-avx2")
    assert "127.0.0.1:1" in remote_failure["error"] or "rpc" in remote_failure["error"].lower()
    assert (out / "compare.png").stat().st_size > 5000 and (out / "compare-breakdown.png").is_file()
    assert report["breakdown"]["by_class_us"].keys() >= {"stem", "depthwise", "head"}


def test_compare_markdown_reuses_builds(capsys, tmp_path, tiny_model):
    out = tmp_path / "out"
    argv = ["compare", "x86-avx2", "--model", str(tiny_model), "-o", str(out), "--baselines", "onnxruntime", *FAST]
    assert main(argv) == 0
    first = capsys.readouterr()
    assert main(argv + ["--no-chart"]) == 0
    second = capsys.readouterr()
    assert "reusing" in second.err and "building" in first.err
    lines = [line for line in second.out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| target | batch | device | tuning | median ms")
    assert any(line.startswith("| TVM x86-avx2 | 1 |") and "default schedules" in line and "pass" in line for line in lines)
    assert "chart:" not in second.out


def test_formats_of_a_failed_row():
    records = [
        {
            "label": "TVM arm-cortex-a72",
            "kind": "tvm",
            "batch": 1,
            "device": "remote cpu",
            "emulated": True,
            "tuning": "untuned",
            "status": "failed",
            "error": "no RPC server at 127.0.0.1:9190 (connection refused)",
            "median_ms": None,
            "p10_ms": None,
            "p90_ms": None,
            "n": 0,
            "images_per_second": None,
            "ratio_to_ort": None,
            "parity": "",
            "artifact": None,
            "threads": 4,
        }
    ]
    md = format_markdown(records)
    assert "| TVM arm-cortex-a72 (emulated) | 1 | remote cpu | untuned | failed: no RPC server" in md
    csv_text = format_csv(records)
    assert csv_text.splitlines()[0].startswith("label,kind,batch") and "connection refused" in csv_text


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tuning-log", "nodir"], "PROFILE=DIR"),
        (["--baselines", "tensorflow"], "unknown baseline"),
        (["--runs", "0"], "--runs must be >= 1"),
    ],
)
def test_user_errors(capsys, tmp_path, tiny_model, extra, message):
    code = main(["compare", "x86-avx2", "--model", str(tiny_model), "-o", str(tmp_path), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err


def test_a_profile_without_a_model_names_the_flag(capsys, tmp_path):
    code = main(["compare", "x86-avx2", "-o", str(tmp_path), "--baselines", "none", "--format", "json", "--no-chart"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert code == 1 and rows[0]["error"] == "a profile target needs --model M.onnx to build from"


@pytest.mark.rpc
def test_compare_on_an_emulated_board_in_one_command(capsys, tmp_path, tiny_model):
    from tvmdeploy.tools.devices import board

    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "x86-avx2",
            "arm-cortex-a72@emulated",
            "--model",
            str(tiny_model),
            "-o",
            str(out),
            "--baselines",
            "onnxruntime",
            "--format",
            "json",
            "--max-seconds",
            "10",
            *FAST,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = json.loads(captured.out)["rows"]
    a72 = next(r for r in rows if r["label"].startswith("TVM arm-cortex-a72"))
    assert a72["status"] == "ok" and a72["emulated"] and a72["parity"].startswith("pass")
    # ONNX Runtime on the board itself, right after its target; the A72's ratio is against it, not the host's ORT.
    board_ort = rows[rows.index(a72) + 1]
    assert board_ort["kind"] == "onnxruntime" and board_ort["status"] == "ok" and board_ort["emulated"]
    assert board_ort["device"] == a72["device"] and board_ort["parity"].startswith("pass")
    assert a72["ratio_to_ort"] == pytest.approx(a72["median_ms"] / board_ort["median_ms"])
    assert "started an emulated aarch64 board" in captured.err
    # The board started for the run is gone afterwards.
    assert not [s for s in board.status() if s.key.startswith("compare-") and s.alive]
