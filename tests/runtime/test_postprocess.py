"""Tests for tvmdeploy.runtime.postprocess: softmax and top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.labels import load_labels
from tvmdeploy.runtime.postprocess import Prediction, softmax, topk, topk_indices


def test_softmax_rows_sum_to_one_and_match_torch() -> None:
    logits = np.random.default_rng(0).normal(0, 5, size=(4, 1000)).astype(np.float32)
    p = softmax(logits)
    assert p.shape == logits.shape and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(p, torch.softmax(torch.from_numpy(logits), dim=-1).numpy(), rtol=1e-5, atol=1e-8)


def test_softmax_is_shift_invariant_and_stable_for_huge_logits() -> None:
    logits = np.array([[1.0, 2.0, 3.0]], dtype=np.float64)
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(softmax(logits), expected, rtol=1e-12)
    for shift in (1e3, -1e3, 1e30):
        # Naive exp() overflows (or underflows to 0/0) here; the max-shifted form must not.
        got = softmax(np.array([[1.0, 2.0, 3.0]]) + shift) if abs(shift) < 1e20 else softmax(np.array([[shift, 0.0]]))
        assert np.all(np.isfinite(got))
    np.testing.assert_allclose(softmax(logits + 1e3), expected, rtol=1e-12)
    np.testing.assert_array_equal(softmax(np.array([1e30, 0.0])), [1.0, 0.0])


def test_softmax_dtypes_and_shapes() -> None:
    assert softmax(np.zeros(5, dtype=np.float64)).dtype == np.float64
    assert softmax(np.zeros(5, dtype=np.float16)).dtype == np.float32
    np.testing.assert_allclose(softmax(np.array([0, 0, 0, 0])), 0.25)  # ints become float32
    assert softmax(np.zeros((2, 3, 4))).shape == (2, 3, 4)  # over the last axis only
    np.testing.assert_allclose(softmax(np.zeros((2, 3, 4))).sum(-1), 1.0)


def test_softmax_rejects_scalar_and_non_finite() -> None:
    with pytest.raises(TvmDeployError, match="scalar"):
        softmax(np.float32(1.0))
    with pytest.raises(TvmDeployError, match="NaN"):
        softmax(np.array([1.0, np.nan]))
    with pytest.raises(TvmDeployError, match="NaN or infinity"):
        softmax(np.array([1.0, np.inf]))


def test_topk_orders_by_probability_with_labels() -> None:
    labels = load_labels()
    probs = np.zeros((2, 1000), dtype=np.float32)
    probs[0, [281, 285, 7]] = [0.5, 0.3, 0.2]
    probs[1, 1] = 1.0
    result = topk(probs, 3, labels.names)
    assert len(result) == 2 and all(len(r) == 3 for r in result)
    assert [p.index for p in result[0]] == [281, 285, 7]
    assert result[0][0] == Prediction(281, "tabby", pytest.approx(0.5))
    assert result[1][0].label == "goldfish" and result[1][0].probability == 1.0
    assert all(isinstance(p.index, int) and isinstance(p.probability, float) for p in result[0])


def test_topk_properties_on_random_rows() -> None:
    probs = softmax(np.random.default_rng(1).normal(size=(5, 50)))
    for row, preds in zip(probs, topk(probs, 10)):
        got = [p.probability for p in preds]
        assert got == sorted(got, reverse=True)
        assert got[0] == pytest.approx(row.max())
        assert set(p.index for p in preds) == set(np.argsort(-row)[:10].tolist())
        assert preds[0].label == f"class {preds[0].index}"


def test_topk_ties_keep_lower_index_first_and_accepts_1d() -> None:
    result = topk(np.array([0.25, 0.25, 0.25, 0.25]), 4)
    assert [p.index for p in result[0]] == [0, 1, 2, 3]


def test_topk_indices_rank_ties_lower_index_first_on_any_leading_shape() -> None:
    assert topk_indices(np.zeros((1, 6)), 5).tolist() == [[0, 1, 2, 3, 4]]
    assert topk_indices(np.array([[1, 3, 2], [2, 2, 9]]), 2).tolist() == [[1, 2], [2, 0]]
    assert topk_indices(np.array([0.1, 0.7, 0.2]), 1).tolist() == [1]


@pytest.mark.parametrize("k", [0, -1, 6, 2.0, True, "3", None])
def test_topk_validates_k(k: object) -> None:
    with pytest.raises(TvmDeployError, match=r"k must be an integer in 1\.\.5"):
        topk(np.full((1, 5), 0.2), k)  # type: ignore[arg-type]


def test_topk_accepts_numpy_integer_k_and_full_k() -> None:
    assert len(topk(np.full((1, 5), 0.2), np.int64(5))[0]) == 5


def test_topk_rejects_bad_shapes_and_label_count() -> None:
    with pytest.raises(TvmDeployError, match="shape"):
        topk(np.zeros((1, 2, 3)), 1)
    with pytest.raises(TvmDeployError, match="3 labels for 5 classes"):
        topk(np.full((1, 5), 0.2), 1, ["a", "b", "c"])
