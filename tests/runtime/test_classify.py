"""Streaming classification: folders expand, bad files are reported in place, at most one batch is decoded ahead."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvmdeploy.runtime.classify import (
    classify_files,
    describe_failure,
    expand_image_paths,
    prediction_lines,
    to_record,
    unreadable_summary,
    weights_caveat,
)
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.preprocess import PreprocessConfig

CONFIG = PreprocessConfig(resize=8, crop=8)


def _png(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (10, 9), (value, 255 - value, 7)).save(path)
    return path


class MeanRed:
    """A 3-class classifier in numpy whose answer is known: class 2 when the red channel is bright, else 0."""

    def __init__(self):
        self.calls = []

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.calls.append(len(images))
        red = images[:, 0].mean(axis=(1, 2))
        return np.stack([-red, np.zeros_like(red), red], axis=1)


def test_folder_expands_to_sorted_images_and_files_stay(tmp_path):
    _png(tmp_path / "d" / "b.png", 1)
    _png(tmp_path / "d" / "a.png", 1)
    (tmp_path / "d" / "notes.txt").write_text("x")
    (tmp_path / "d" / ".hidden.png").write_bytes(b"")
    loose = tmp_path / "missing.jpg"
    assert expand_image_paths([tmp_path / "d", loose]) == [tmp_path / "d" / "a.png", tmp_path / "d" / "b.png", loose]


def test_folder_without_images_is_a_usage_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(TvmDeployError, match="no images found"):
        expand_image_paths([tmp_path / "empty"])


def test_bad_members_are_reported_in_order_and_the_rest_classified(tmp_path):
    good1, good2 = _png(tmp_path / "g1.png", 250), _png(tmp_path / "g2.png", 5)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    missing = tmp_path / "missing.png"
    model = MeanRed()
    results = list(classify_files(model, [good1, broken, missing, good2], CONFIG, batch_size=2, k=2, labels=["a", "b", "c"]))
    assert [r.path for r in results] == [good1, broken, missing, good2]
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[0].top[0].label == "c" and results[3].top[0].label == "a"
    assert "broken.jpg" in describe_failure(results[1]) and "image file not found" in results[2].error
    assert model.calls == [2]  # the two readable images made one batch


def test_decodes_at_most_one_batch_ahead(tmp_path):
    paths = [_png(tmp_path / f"i{i}.png", 40 * i) for i in range(5)]
    model = MeanRed()
    stream = classify_files(model, paths, CONFIG, batch_size=2, k=1)
    first = next(stream)
    assert first.ok and model.calls == [2]  # nothing beyond the first batch was decoded or run yet
    assert len(list(stream)) == 4 and model.calls == [2, 2, 1]


def test_batch_size_must_be_positive(tmp_path):
    with pytest.raises(TvmDeployError, match="batch size must be >= 1"):
        list(classify_files(MeanRed(), [tmp_path / "x.png"], CONFIG, batch_size=0, k=1))


def test_records_and_text_of_classified_inputs_keep_their_logits(tmp_path):
    good, missing = _png(tmp_path / "g.png", 250), tmp_path / "missing.png"
    ok, bad = classify_files(MeanRed(), [good, missing], CONFIG, batch_size=2, k=2, labels=["a", "b", "c"])
    assert ok.logits is not None and ok.logits.shape == (3,) and int(ok.logits.argmax()) == 2 and bad.logits is None
    record = to_record(ok)
    assert record["image"] == str(good) and [p["label"] for p in record["top"]] == ["c", "b"]
    assert to_record(bad) == {"image": str(missing), "error": bad.error}
    lines = prediction_lines(ok)
    assert lines[0] == f"{good}:" and lines[1].startswith("  1. ") and lines[1].endswith("  c (class 2)")
    assert unreadable_summary(1, 2) == "1 of 2 image(s) could not be read (listed above); the others were classified"
    assert weights_caveat("random:seed=0") == "weights are random (random:seed=0): class names are meaningless"
    assert weights_caveat("torchvision:IMAGENET1K_V1") == ""
