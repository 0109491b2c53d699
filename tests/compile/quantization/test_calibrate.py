"""`tvmdeploy quantize`: QDQ through ONNX Runtime's tool, calibrated on images through our preprocessing; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvmdeploy.runtime.errors import TvmDeployError


def _photos(folder: Path, count: int, *, broken: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (30 + i, 40, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    for i in range(broken):
        (folder / f"z{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (folder / "notes.txt").write_text("not an image, not even looked at")
    return folder


def _op_types(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_quantize_writes_a_qdq_model_that_onnxruntime_runs_close_to_float(tiny_onnx, tmp_path, capsys):
    from tvmdeploy.compile.measure.reference import OrtModel, reference_input
    from tvmdeploy.tools.cli.main import main

    model = tiny_onnx()
    out = tmp_path / "tiny.int8.onnx"
    code = main(["quantize", str(model), "--calibration", str(_photos(tmp_path / "cal", 4, broken=1)), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "over 4 image(s)" in printed and "per-channel" in printed and "uint8 activations x int8 weights" in printed
    assert "skipped 1 calibration file(s)" in printed and "z0.jpg" in printed
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "Gemm"} <= _op_types(out)
    from tvmdeploy.compile.measure.verify import deepest_reduction

    assert deepest_reduction(out) == deepest_reduction(model) == 27  # weights behind DequantizeLinear still count
    x = reference_input([1, 3, 16, 16])
    expected, got = OrtModel(model).run(x), OrtModel(out).run(x)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 0.2 * np.abs(expected).max()


def test_calibration_sees_exactly_what_deployment_sees(tmp_path):
    from tvmdeploy.compile.quantization.calibrate import _calibration_images
    from tvmdeploy.runtime.preprocess import PreprocessConfig, load_image

    folder = _photos(tmp_path / "cal", 3)
    config = PreprocessConfig.for_input([1, 3, 16, 16])
    images, skipped = _calibration_images(folder, config, samples=2, progress=False)
    assert skipped == [] and len(images) == 2
    for image, name in zip(images, ["p0.png", "p1.png"]):
        np.testing.assert_array_equal(image, load_image(folder / name, config))


def test_the_python_api_per_tensor_and_entropy(tiny_onnx, tmp_path):
    import tvmdeploy

    result = tvmdeploy.quantize(
        tiny_onnx(), _photos(tmp_path / "cal", 3), tmp_path / "q.onnx", per_channel=False, method="entropy", samples=2, progress=False
    )
    assert isinstance(result, tvmdeploy.QuantizeResult)
    assert result.images_used == 2 and not result.per_channel and result.method == "entropy"
    assert "QuantizeLinear" in _op_types(result.output)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "calibration folder not found"),
        ("file", "--calibration must be a folder of images"),
        ("empty", "holds no images"),
        ("all-bad", "none of its 2 image file(s) could be read"),
        ("quantized", "is already quantized (it has DequantizeLinear, QuantizeLinear)"),
        ("method", "--method: unknown calibration method 'kl'"),
        ("samples", "--samples must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_onnx, tmp_path, capsys, case, message):
    from tvmdeploy.compile.quantization.calibrate import quantize_model
    from tvmdeploy.tools.cli.main import main

    model, folder = tiny_onnx(), _photos(tmp_path / "cal", 2)
    args = [str(model), "--calibration", str(folder), "-o", str(tmp_path / "out.onnx")]
    if case == "missing":
        args[2] = str(tmp_path / "nowhere")
    elif case == "file":
        args[2] = str(folder / "p0.png")
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args[2] = str(tmp_path / "empty")
    elif case == "all-bad":
        args[2] = str(_photos(tmp_path / "bad", 0, broken=2))
    elif case == "quantized":
        quantized = tmp_path / "already.onnx"
        quantize_model(model, folder, quantized, samples=1, progress=False)
        args[0] = str(quantized)
    elif case == "method":
        with pytest.raises(TvmDeployError, match="unknown calibration method 'kl'"):
            quantize_model(model, folder, tmp_path / "x.onnx", method="kl")
        return
    elif case == "samples":
        args += ["--samples", "0"]
    capsys.readouterr()
    assert main(["quantize", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar, if it had started
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out.onnx").exists()


def test_quantize_reports_how_closely_int8_follows_fp32(tiny_onnx, tmp_path, capsys):
    from tvmdeploy.tools.cli.main import main

    code = main(["quantize", str(tiny_onnx()), "--calibration", str(_photos(tmp_path / "cal", 3)), "-o", str(tmp_path / "q.onnx")])
    printed = capsys.readouterr().out
    assert code == 0 and "int8 vs fp32 on 3 image(s): top-1 agreement" in printed and "dB" in printed


def test_agreement_of_logits():
    from tvmdeploy.compile.quantization.agreement import logit_agreement

    reference = np.array([[1.0, 3.0, 0.0], [2.0, 0.0, 1.0]])
    same = logit_agreement(reference, reference)
    assert same.top1 == 1.0 and same.sqnr_db == float("inf")
    noisy = logit_agreement(reference, reference + np.array([[0.0, 0.0, 0.1], [0.0, 2.5, 0.0]]))
    assert noisy.top1 == 0.5  # the second image's top class moved
    assert noisy.sqnr_db == pytest.approx(10 * np.log10(15.0 / 6.26))
