"""The command line: verbs end to end on a tiny model; user errors are one line on stderr with exit status 2."""

import json

import pytest

from tvmdeploy.tools.cli.main import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_verbs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for verb in ("zoo", "export", "targets", "build", "run", "bench"):
        assert verb in out


def test_targets_table_and_json(capsys):
    code, out, _ = run_cli(capsys, "targets")
    assert code == 0 and "x86-avx2" in out and "arm-cortex-a72" in out and "cuda-sm90" in out
    code, out, _ = run_cli(capsys, "targets", "--json")
    names = {row["name"] for row in json.loads(out)}
    assert {"x86-avx2", "x86-avx512", "cuda-sm80", "cuda-sm90", "arm-cortex-a53", "arm-cortex-a72", "arm-cortex-a76", "host"} <= names


def test_build_run_bench_on_a_tiny_model(capsys, tmp_path, tiny_onnx_path):
    code, out, err = run_cli(capsys, "build", tiny_onnx_path, "--profile", "x86-avx2", "-o", tmp_path / "art")
    assert code == 0, err
    assert "parity vs onnxruntime" in out and "PASS" in out
    # The tiny model has 10 classes, not ImageNet's 1000, and a 16x16 input: run shows class indices,
    # preprocessing to the model's own size.
    code, out, err = run_cli(capsys, "run", tmp_path / "art", tiny_onnx_path.parent / "img.png", "--topk", "3", "--json")
    assert code == 0, err
    top = json.loads(out)["results"][0]["top"]
    assert len(top) == 3 and all(p["label"] == f"class {p['index']}" for p in top)
    code, out, err = run_cli(capsys, "bench", tmp_path / "art", "--runs", "5", "--warmup", "1", "--min-seconds", "0", "--json")
    assert code == 0, err
    report = json.loads(out)
    names = list(report["results"])
    assert names[0] == "TVM x86-avx2" and names[1].startswith("ONNX Runtime")
    assert report["results"][names[0]]["n"] >= 5 and report["results"][names[0]]["ratio_to_ort"] > 0
    code, out, _ = run_cli(capsys, "bench", tmp_path / "art", "--runs", "5", "--warmup", "1", "--min-seconds", "0")
    assert code == 0 and "| TVM x86-avx2" in out and "vs ORT" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["build", "{missing}", "--profile", "x86-avx2", "-o", "{out}"], "ONNX file not found"),
        (["build", "{onnx}", "--profile", "x86-avx3", "-o", "{out}"], "unknown profile 'x86-avx3'"),
        (["build", "{onnx}", "--profile", "x86-avx2", "-o", "{out}", "--input-shape", "1,3,a,b"], "--input-shape must look like"),
        (["run", "{missing}", "{onnx}"], "artifact folder not found"),
        (["bench", "{missing}"], "artifact folder not found"),
        (["bench", "{missing}", "--rpc-tracker", "127.0.0.1:9"], "--rpc-tracker needs --rpc-key"),
        (["bench", "{missing}", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["run", "{missing}", "{onnx}", "--threads", "-2"], "--threads must be >= 1, got -2"),
        (["eval", "{missing}", "{out}", "--threads", "0"], "--threads must be >= 1, got 0"),
        (["compare", "{missing}", "--threads", "two"], "--threads must be an integer >= 1, got 'two'"),
        # the library's messages name API parameters; under the CLI they name its flags
        (["run", "{missing}", "{onnx}", "--rpc-tracker", "nohost", "--rpc-key", "k"], "error: --rpc-tracker expects HOST:PORT"),
        (["run", "{missing}", "{onnx}", "--rpc", "nohost"], "error: --rpc expects HOST:PORT"),
        (["tune", "--model", "{onnx}", "--profile", "x86-avx2", "--ops", "winograd"], "error: --ops: unknown class(es) winograd"),
    ],
)
def test_user_errors_are_one_line(capsys, tmp_path, tiny_onnx_path, argv, message):
    values = {"missing": tmp_path / "missing", "out": tmp_path / "out", "onnx": tiny_onnx_path}
    code, _, err = run_cli(capsys, *[a.format(**values) for a in argv])
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.fixture
def tiny_onnx_path(tiny_onnx, tmp_path):
    from PIL import Image

    path = tiny_onnx()
    Image.new("RGB", (300, 260), (120, 30, 200)).save(tmp_path / "img.png")
    return path


def test_flags_of_api_parameters(capsys, monkeypatch):
    import tvmdeploy.tools.cli.main as cli
    from tvmdeploy.runtime.errors import TvmDeployError, arg

    assert [cli.flag_of(p) for p in ("rpc_key", "input_shape", "log_dir", "rpc_server", "call_timeout_s")] == [
        "--rpc-key",
        "--input-shape",
        "--log-dir",
        "--rpc",
        "--rpc-call-timeout",
    ]

    class Verb:  # a verb whose library call fails: the message is spelled with flags while the CLI runs
        @staticmethod
        def add_arguments(parser):
            pass

        @staticmethod
        def run(args):
            raise TvmDeployError(f"{arg('rpc_tracker')} needs {arg('rpc_key')} (or a profile with rpc_key)", param="rpc_key")

    monkeypatch.setattr(cli, "_load_verb", lambda name: Verb)
    code, _, err = run_cli(capsys, "targets")
    assert code == 2 and err == "error: --rpc-tracker needs --rpc-key (or a profile with rpc_key)\n"
    assert arg("rpc_key") == "rpc_key"  # outside the CLI, the API's names again
