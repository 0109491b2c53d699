"""`tvmdeploy run` on a real (tiny, 224x224, 1000-class) artifact: folders, bad members, flat memory."""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvmdeploy.tools.cli.main import main


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, tiny_classifier_factory, avx2_profile):
    from tvmdeploy.compile.build import build_artifact

    folder = tmp_path_factory.mktemp("run")
    onnx_path = tiny_classifier_factory(folder / "tiny224.onnx", input_shape=(1, 3, 224, 224), classes=1000)
    return build_artifact(onnx_path, avx2_profile, folder / "art").artifact_dir


def _photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    paths = []
    for i in range(count):
        path = folder / f"img{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (256, 300, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _run(capsys, *argv):
    code = main(["run", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bad_members_do_not_stop_the_batch(capsys, artifact, tmp_path):
    good = _photos(tmp_path / "p", 2)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 truncated")
    code, out, err = _run(capsys, artifact, good[0], broken, tmp_path / "missing.png", good[1])
    assert code == 1
    assert f"{good[0]}:" in out and f"{good[1]}:" in out and out.count("  1. ") == 2
    unreadable = [line for line in err.splitlines() if line.startswith("unreadable: ")]
    assert len(unreadable) == 2 and "broken.jpg" in unreadable[0] and "missing.png" in unreadable[1]
    assert err.splitlines()[-1].startswith("error: 2 of 4 image(s) could not be read")
    assert "Traceback" not in err


def test_folder_argument_and_json(capsys, artifact, tmp_path):
    photos = _photos(tmp_path / "folder", 3)
    (tmp_path / "folder" / "readme.txt").write_text("not an image")
    code, out, err = _run(capsys, artifact, tmp_path / "folder", "--json", "--topk", "3")
    assert code == 0, err
    report = json.loads(out)
    assert [r["image"] for r in report["results"]] == [str(p) for p in photos]
    assert all(len(r["top"]) == 3 for r in report["results"]) and report["unreadable"] == 0


def test_usage_errors_stay_exit_2(capsys, artifact, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = _run(capsys, artifact, tmp_path / "empty")
    assert code == 2 and "no images found" in err and err.count("\n") == 1
    code, _, err = _run(capsys, artifact, tmp_path / "x.png", "--topk", "0")
    assert code == 2 and "--topk must be >= 1" in err


def _peak_bytes(capsys, artifact, folder: Path) -> int:
    tracemalloc.start()
    try:
        code, _, err = _run(capsys, artifact, folder, "--json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 0, err
    return peak


def test_memory_stays_flat_as_images_grow(capsys, artifact, tmp_path):
    """Python-side peak (numpy arrays included) for 24 images is within two decoded images of the peak for 3."""
    _photos(tmp_path / "few", 3)
    _photos(tmp_path / "many", 24)
    _peak_bytes(capsys, artifact, tmp_path / "few")  # first call: lazy imports and caches
    few = _peak_bytes(capsys, artifact, tmp_path / "few")
    many = _peak_bytes(capsys, artifact, tmp_path / "many")
    one_image = 3 * 224 * 224 * 4
    assert many - few < 2 * one_image, (few, many)
