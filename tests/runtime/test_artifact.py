"""Artifact manifests: round trip, corrupt files, and hash checks that refuse modified libraries."""

import json

import pytest

from tvmdeploy.runtime.artifact import (
    LIBRARY_FILE,
    ONNX_FILE,
    Manifest,
    TensorSpec,
    read_manifest,
    sha256_file,
    tuned_tasks,
    verify_library,
    verify_onnx,
    write_manifest,
)
from tvmdeploy.runtime.errors import TvmDeployError


def make_artifact(folder, library=b"\x7fELF fake library", onnx=b"onnx bytes"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LIBRARY_FILE).write_bytes(library)
    (folder / ONNX_FILE).write_bytes(onnx)
    manifest = Manifest(
        model_name="m",
        model_sha256=sha256_file(folder / ONNX_FILE),
        weights="random:seed=0",
        labels="imagenet1k",
        profile="x86-avx2",
        device="cpu",
        arch="x86_64",
        cpu_flags=[],
        threads=2,
        target={"kind": "llvm"},
        tvm_version="0.27",
        input=TensorSpec("input", [1, 3, 224, 224]),
        output=TensorSpec("logits", [1, 1000]),
        preprocess={},
        library_sha256=sha256_file(folder / LIBRARY_FILE),
    )
    write_manifest(folder, manifest)
    return manifest


def test_round_trip(tmp_path):
    written = make_artifact(tmp_path / "a")
    read = read_manifest(tmp_path / "a")
    assert read == written
    assert read.weights_are_random and read.batch == 1
    assert verify_library(tmp_path / "a") == tmp_path / "a" / LIBRARY_FILE
    assert verify_onnx(tmp_path / "a") == tmp_path / "a" / ONNX_FILE


def test_labels_and_preprocessing_of_a_manifest(tmp_path):
    from tvmdeploy.runtime.preprocess import PreprocessConfig

    manifest = make_artifact(tmp_path / "a")
    assert manifest.num_classes == 1000 and len(manifest.class_labels()) == 1000
    # preprocess {}: the build found no image input; run and eval refuse in one line.
    with pytest.raises(TvmDeployError, match=r"takes input \[1, 3, 224, 224\], not an RGB image batch"):
        manifest.preprocess_config()
    manifest.preprocess = PreprocessConfig.for_input([1, 3, 224, 224]).to_dict()
    assert manifest.preprocess_config() == PreprocessConfig()
    manifest.labels, manifest.output = "index", TensorSpec("logits", [1, 10])
    assert manifest.class_labels().names[3] == "class 3"


def test_modified_library_is_refused(tmp_path):
    make_artifact(tmp_path / "a")
    (tmp_path / "a" / LIBRARY_FILE).write_bytes(b"\x7fELF tampered")
    with pytest.raises(TvmDeployError, match="does not match the manifest"):
        verify_library(tmp_path / "a")


def test_missing_library_is_refused(tmp_path):
    make_artifact(tmp_path / "a")
    (tmp_path / "a" / LIBRARY_FILE).unlink()
    with pytest.raises(TvmDeployError, match="library missing"):
        verify_library(tmp_path / "a")


def test_not_an_artifact(tmp_path):
    with pytest.raises(TvmDeployError, match="artifact folder not found"):
        read_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TvmDeployError, match="not an artifact"):
        read_manifest(tmp_path / "empty")


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "corrupt manifest"), ("[]", "not a manifest"), ('{"format": 99}', "format 99"), ('{"format": 1}', "malformed")],
)
def test_corrupt_manifests(tmp_path, content, message):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(TvmDeployError, match=message):
        read_manifest(tmp_path)


def test_manifest_is_plain_json(tmp_path):
    make_artifact(tmp_path / "a")
    data = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert data["input"] == {"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}
    assert len(data["library_sha256"]) == 64


def test_tuned_tasks_text_is_shared_by_the_schedule_text(tmp_path):
    manifest = make_artifact(tmp_path / "a")
    assert tuned_tasks({"tasks_from_database": 33, "tasks_total": 34}) == "33/34 tasks"
    assert tuned_tasks(None) == "?/? tasks"
    assert tuned_tasks({"tasks_from_database": 24, "tasks_total": 24, "tasks_merged": 10}) == ("24/24 tasks (10 merged into blocks)")
    manifest.tuning = {"database": "tuning_logs/x", "tasks_from_database": 34, "tasks_total": 34, "trials": 900}
    assert manifest.schedule_text() == "tuned 34/34 tasks, 900 trials"
