"""Top-1/top-5 metrics by hand, ImageNet folder layouts and their errors, and the batched evaluation loop."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvmdeploy.compile.measure.evaluate import Metrics, OrtClassifier, evaluate, load_dataset
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.labels import load_labels

LABELS = load_labels("imagenet1k")


def _logits(rows: list[list[int]], classes: int = 10) -> np.ndarray:
    """Logits whose ranking is exactly `row` (first = highest) for each image."""
    out = np.zeros((len(rows), classes), np.float32)
    for i, ranking in enumerate(rows):
        for rank, cls in enumerate(ranking):
            out[i, cls] = 100.0 - rank
    return out


def test_four_images_by_hand():
    # image 0: label ranked 1st -> top-1 and top-5 hit; image 1: ranked 3rd -> top-5 only;
    # image 2: ranked 5th -> top-5 only; image 3: ranked 6th -> miss both.
    logits = _logits([[3, 1, 2, 4, 5, 6], [0, 1, 7, 2, 3, 4], [9, 8, 7, 6, 5, 4], [0, 1, 2, 3, 4, 9]])
    metrics = Metrics()
    metrics.update(logits, [3, 7, 5, 9])
    report = metrics.to_dict()
    assert (report["top1_correct"], report["top5_correct"], report["images"]) == (1, 3, 4)
    assert report["top1"] == pytest.approx(0.25) and report["top5"] == pytest.approx(0.75)
    assert report["agreement_top1"] is None


def test_agreement_top1_and_top5_set():
    ours = _logits([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    # same order | same five in another order, other top-1 | a different fifth class
    ref = _logits([[1, 2, 3, 4, 5], [2, 1, 5, 4, 3], [1, 2, 3, 4, 9]])
    metrics = Metrics()
    metrics.update(ours, [1, 1, 1], reference=ref)
    report = metrics.to_dict()
    assert report["agreement_top1"] == pytest.approx(2 / 3)
    assert report["agreement_top5_set"] == pytest.approx(2 / 3)


def _image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_synset_folders(tmp_path):
    _image(tmp_path / "n01440764" / "a.JPEG")
    _image(tmp_path / "n01440764" / "b.png")
    _image(tmp_path / "n01443537" / "c.jpg")
    (tmp_path / "n01443537" / "notes.txt").write_text("not an image")
    ds = load_dataset(tmp_path, LABELS)
    assert ds.layout == "synset-folders"
    assert [(p.path.name, p.label) for p in ds.items] == [("a.JPEG", 0), ("b.png", 0), ("c.jpg", 1)]


def test_flat_folder_with_index_per_line(tmp_path):
    for name in ("ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000001.JPEG"):
        _image(tmp_path / "val" / name)
    gt = tmp_path / "gt.txt"
    gt.write_text("65\n970\n")
    ds = load_dataset(tmp_path / "val", LABELS, gt)
    # sorted filename order: ..01 gets the first line
    assert [(p.path.name[-9:], p.label) for p in ds.items] == [("0001.JPEG", 65), ("0002.JPEG", 970)]


def test_flat_folder_with_file_label_lines(tmp_path):
    _image(tmp_path / "val" / "x.jpg")
    _image(tmp_path / "val" / "y.jpg")
    gt = tmp_path / "gt.txt"
    gt.write_text("y.jpg n01443537\nx.jpg 7\n")
    ds = load_dataset(tmp_path / "val", LABELS, gt)
    assert [(p.path.name, p.label) for p in ds.items] == [("x.jpg", 7), ("y.jpg", 1)]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: root.mkdir(), "is empty"),
        (lambda root: _image(root / "n99999999" / "a.jpg"), "unknown synset"),
        (lambda root: _image(root / "cats" / "a.jpg"), "not a WordNet id"),
        (lambda root: _image(root / "a.jpg"), "ground_truth"),
        (lambda root: (_image(root / "n01440764" / "a.jpg"), _image(root / "b.jpg")), "loose image"),
        (lambda root: (root / "n01440764").mkdir(parents=True), "no images found"),
    ],
)
def test_bad_synset_folders(tmp_path, setup, message):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(TvmDeployError, match=message):
        load_dataset(root, LABELS)


@pytest.mark.parametrize(
    "lines, message",
    [
        ("1\n", "1 label\\(s\\) for 2 image"),
        ("1\n1000\n", "out of range 0..999"),
        ("1\n-1\n", "out of range"),
        ("a.jpg 3\n", "have no label"),
        ("a.jpg 3\nb.jpg 4\nc.jpg 5\n", "not in"),
        ("a.jpg 3\nb.jpg n99999999\n", "unknown synset"),
        ("a.jpg 3\nb.jpg cat\n", "neither a class index"),
        ("", "is empty"),
    ],
)
def test_bad_ground_truth(tmp_path, lines, message):
    _image(tmp_path / "val" / "a.jpg")
    _image(tmp_path / "val" / "b.jpg")
    gt = tmp_path / "gt.txt"
    gt.write_text(lines)
    with pytest.raises(TvmDeployError, match=message):
        load_dataset(tmp_path / "val", LABELS, gt)


def test_label_range_follows_the_model(tmp_path):
    _image(tmp_path / "n01443537" / "a.jpg")  # class 1
    with pytest.raises(TvmDeployError, match="out of range 0..0"):
        load_dataset(tmp_path, LABELS, num_classes=1)


def test_unreadable_images_are_counted_not_fatal(tmp_path):
    _image(tmp_path / "n01440764" / "good.jpg")
    (tmp_path / "n01440764" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = load_dataset(tmp_path, LABELS)
    from tvmdeploy.runtime.preprocess import load_image

    seen = []

    def classify(images):
        seen.append(len(images))
        return _logits([[0]] * len(images), classes=1000)

    metrics = evaluate(ds, classify, load_image, batch_size=8, progress=seen.append)
    report = metrics.to_dict()
    assert report["images"] == 1 and report["top1"] == 1.0
    assert [Path(u["path"]).name for u in report["unreadable"]] == ["broken.jpg"]
    assert seen == [1, 2]  # one image classified, progress told about both


def test_all_unreadable_is_recorded_not_raised(tmp_path):
    (tmp_path / "n01440764").mkdir()
    (tmp_path / "n01440764" / "broken.png").write_bytes(b"nope")
    ds = load_dataset(tmp_path, LABELS)
    from tvmdeploy.runtime.preprocess import load_image

    report = evaluate(ds, lambda x: x, load_image, batch_size=2).to_dict()
    assert report["images"] == 0 and report["top1"] is None
    assert [Path(u["path"]).name for u in report["unreadable"]] == ["broken.png"]


def test_ort_classifier_pads_to_the_fixed_batch(tiny_onnx):
    ort = OrtClassifier(tiny_onnx(input_shape=(2, 3, 16, 16)))
    assert ort.batch == 2
    images = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    out = ort.run_images(images)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out[2], ort.run_images(images[2:3])[0], rtol=1e-5, atol=1e-5)
