"""Parity metrics: max |Δ| and ordered top-5 agreement, checked on hand-made logits and against ONNX Runtime."""

import numpy as np
import pytest

from tvmdeploy.compile.measure.reference import OrtModel, reference_input
from tvmdeploy.compile.measure.verify import check_parity, compare_logits, top5
from tvmdeploy.runtime.errors import TvmDeployError


def test_identical_logits_pass():
    logits = np.arange(20, dtype=np.float32).reshape(2, 10)
    report = compare_logits(logits, logits.copy(), 1e-4, "ref")
    assert report.passed and report.max_abs_diff == 0.0 and report.top5_identical
    assert "PASS" in report.summary() and report.to_dict()["status"] == "passed"


def test_small_difference_within_tolerance_passes_and_above_fails():
    expected = np.linspace(0, 1, 10, dtype=np.float32)[None]
    assert compare_logits(expected + 5e-5, expected, 1e-4, "ref").passed
    report = compare_logits(expected + 2e-4, expected, 1e-4, "ref")
    assert not report.passed and report.max_abs_diff == pytest.approx(2e-4, rel=1e-3)
    assert "FAIL" in report.summary() and report.to_dict()["status"] == "failed"


def test_top5_order_matters_even_within_tolerance():
    expected = np.array([[5.0, 4.0, 3.0, 2.00002, 2.0, 0.0]])
    swapped = np.array([[5.0, 4.0, 3.0, 2.0, 2.00002, 0.0]])  # classes 3 and 4 change places, |Δ| = 2e-5
    report = compare_logits(swapped, expected, 1e-4, "ref")
    assert report.max_abs_diff <= 1e-4 and not report.top5_identical and not report.passed


def test_shape_mismatch_fails():
    report = compare_logits(np.zeros((1, 10)), np.zeros((1, 11)), 1e-4, "ref")
    assert not report.passed and report.max_abs_diff == float("inf")


def test_top5_is_ordered_by_logit():
    assert top5(np.array([[0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8]])).tolist() == [[1, 6, 3, 2, 4]]


def test_reference_input_is_fixed_and_normalised():
    a, b = reference_input([2, 3, 8, 8]), reference_input([2, 3, 8, 8])
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and abs(float(a.mean())) < 0.2 and 0.8 < float(a.std()) < 1.2
    assert not np.array_equal(a, reference_input([2, 3, 8, 8], seed=1))


def test_check_parity_against_onnxruntime(tiny_onnx):
    path = tiny_onnx()
    ort = OrtModel(path, threads=1)
    assert check_parity(ort.run, path, [1, 3, 16, 16]).passed
    assert not check_parity(lambda x: ort.run(x) * 1.01 + 1.0, path, [1, 3, 16, 16]).passed


def test_onnxruntime_refuses_garbage(tmp_path):
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    with pytest.raises(TvmDeployError, match="ONNX Runtime cannot load"):
        OrtModel(tmp_path / "bad.onnx")


def test_tolerance_scales_with_the_logits_and_a_wrong_kernel_still_fails_by_orders_of_magnitude():
    # Random-weight FBNet: logits near 1500; a correct build differed from ONNX Runtime by 1.7e-3 (1e-6 relative).
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((1, 1000)) * 500
    rtol = 1280 * 2.0**-24  # the deepest reduction of MobileNet-class nets: 1280 products
    rounding = expected * (1 + rng.uniform(-1e-6, 1e-6, expected.shape))
    assert not compare_logits(rounding, expected, 1e-4, "ref").passed  # the absolute bound refused it
    report = compare_logits(rounding, expected, 1e-4, "ref", rtol=rtol)
    assert report.passed and report.max_abs_logit == pytest.approx(np.abs(expected).max())
    assert report.tolerance == pytest.approx(1e-4 + rtol * report.max_abs_logit)
    assert "x max |logit|" in report.summary() and report.to_dict()["tolerance"] == report.tolerance
    # A wrong kernel (one channel dropped deep in the net) moves the logits by a share of their own size.
    wrong = expected * (1 + rng.uniform(-0.05, 0.05, expected.shape))
    failed = compare_logits(wrong, expected, 1e-4, "ref", rtol=rtol)
    assert not failed.passed and failed.max_abs_diff > 100 * failed.tolerance


def test_relative_tolerance_is_float32_roundoff_times_the_deepest_reduction(tmp_path, tiny_onnx):
    from tvmdeploy.compile.measure.verify import FLOAT32_ROUNDOFF, deepest_reduction, relative_tolerance

    path = tiny_onnx(classes=10)  # 3x3x3 stem (27 products), depthwise 3x3 (9), Gemm over 8 channels
    assert deepest_reduction(path) == 27
    assert relative_tolerance(path) == 27 * FLOAT32_ROUNDOFF


def test_check_parity_bound_grows_with_large_logits_but_catches_a_wrong_model(tiny_onnx):
    path = tiny_onnx()
    ort = OrtModel(path, threads=1)
    x = reference_input([1, 3, 16, 16])
    scale = float(np.abs(ort.run(x)).max())
    report = check_parity(ort.run, path, [1, 3, 16, 16])
    assert report.rtol > 0 and report.max_abs_logit == pytest.approx(scale, rel=1e-6)
    wrong = check_parity(lambda v: ort.run(v) * 1.01, path, [1, 3, 16, 16])
    assert not wrong.passed and wrong.max_abs_diff > 10 * wrong.tolerance
