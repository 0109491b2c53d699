"""`tvmdeploy eval` on generated folders labelled by a reference run: a correct pipeline scores 100%."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvmdeploy.tools.cli.main import main

MODEL = "ppcls_mobilenetv2_x0_25"


def _images(folder: Path, count: int) -> list[Path]:
    """Varied synthetic photos: gradients, blobs and noise at different sizes and aspect ratios."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(count):
        h, w = int(rng.integers(230, 400)), int(rng.integers(230, 400))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (i + 1)) % 256, (yy * (3 + i)) % 256, ((xx + yy) * (5 - i % 5)) % 256], -1)
        noisy = base + rng.normal(0, 25 + 10 * i, (h, w, 3))
        path = folder / f"img_{i:03d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, exported_onnx):
    """(onnx, flat folder, gt file, synset folder): labels are ONNX Runtime's own top-1 on each image."""
    from tvmdeploy.compile.measure.evaluate import OrtClassifier
    from tvmdeploy.runtime.labels import load_labels
    from tvmdeploy.runtime.preprocess import preprocess_images

    onnx_path = exported_onnx(MODEL)
    root = tmp_path_factory.mktemp("eval")
    paths = _images(root / "flat", 6)
    top1 = OrtClassifier(onnx_path).run_images(preprocess_images(paths)).argmax(axis=1)
    gt = root / "gt.txt"
    gt.write_text("".join(f"{int(c)}\n" for c in top1))
    wnids = load_labels().wnids
    for path, cls in zip(paths, top1):
        target = root / "synsets" / wnids[int(cls)] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return onnx_path, root / "flat", gt, root / "synsets"


def _run(capsys, *argv):
    code = main(["eval", *map(str, argv), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_onnx_reference_scores_100_on_its_own_labels(capsys, labelled):
    onnx_path, _, _, synsets = labelled
    code, out, err = _run(capsys, synsets, "--onnx", onnx_path, "--json", "--batch-size", "4")
    assert code == 0, err
    report = json.loads(out)
    assert (report["images"], report["top1"], report["top5"], report["layout"]) == (6, 1.0, 1.0, "synset-folders")


def test_flat_layout_text_report_lists_unreadable(capsys, labelled, tmp_path):
    onnx_path, flat, gt, _ = labelled
    folder = tmp_path / "flat"
    folder.mkdir()
    for path in flat.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "img_999.jpg").write_bytes(b"garbage")  # sorts last: it takes the last label line
    labels = gt.read_text() + "0\n"
    (tmp_path / "gt.txt").write_text(labels)
    code, out, err = _run(capsys, folder, "--onnx", onnx_path, "--ground-truth", tmp_path / "gt.txt")
    # The readable six are all evaluated; the bad one is listed on stderr with its reason, and the status is 1.
    assert code == 1, err
    assert "top-1: 100.00% (6/6)" in out and "top-5: 100.00% (6/6)" in out
    assert "unreadable images: 1 (skipped; listed on stderr)" in out and "img_999.jpg" not in out
    unreadable = [line for line in err.splitlines() if line.startswith("unreadable: ")]
    assert len(unreadable) == 1 and "img_999.jpg" in unreadable[0] and "not an image file" in unreadable[0]
    assert err.splitlines()[-1].startswith("error: 1 of 7 image(s) could not be read")
    assert "weights are random" in out


def test_all_unreadable_lists_each_and_exits_1(capsys, labelled, tmp_path):
    onnx_path, _, _, _ = labelled
    folder = tmp_path / "bad" / "n01440764"
    folder.mkdir(parents=True)
    for name in ("a.jpg", "b.png"):
        (folder / name).write_bytes(b"garbage")
    code, out, err = _run(capsys, tmp_path / "bad", "--onnx", onnx_path, "--json")
    assert code == 1
    assert json.loads(out)["images"] == 0
    assert sum(line.startswith("unreadable: ") for line in err.splitlines()) == 2


def test_mislabelled_folder_is_a_clear_error(capsys, labelled, tmp_path):
    onnx_path, flat, _, _ = labelled
    (tmp_path / "gt.txt").write_text("1\n2\n")
    code, _, err = _run(capsys, flat, "--onnx", onnx_path, "--ground-truth", tmp_path / "gt.txt")
    assert code == 2 and "2 label(s) for 6 image(s)" in err and err.count("\n") == 1


def test_artifact_or_onnx_not_both(capsys, labelled, tmp_path):
    onnx_path, flat, _, _ = labelled
    code, _, err = _run(capsys, flat)
    assert code == 2 and "either an artifact folder or --onnx" in err


@pytest.mark.slow
def test_artifact_with_reference_agrees(capsys, labelled, tmp_path):
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.targets import load_profile

    onnx_path, _, _, synsets = labelled
    artifact = build_artifact(onnx_path, load_profile("x86-avx2"), tmp_path / "art").artifact_dir
    code, out, err = _run(capsys, artifact, synsets, "--reference", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["top1"] == 1.0 and report["top5"] == 1.0
    assert report["agreement_top1"] == 1.0 and report["agreement_top5_set"] == 1.0 and report["reference_compared"] == 6
