"""Build: artifacts for the host pass ONNX Runtime parity; failures keep the previous artifact; bad input is refused."""

import json
from pathlib import Path

import numpy as np
import pytest

from tvmdeploy.compile.build import build_artifact
from tvmdeploy.compile.measure import reference
from tvmdeploy.runtime.artifact import LIBRARY_FILE, ONNX_FILE, read_manifest, sha256_file
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.loader import LocalModule
from tvmdeploy.runtime.preprocess import PreprocessConfig
from tvmdeploy.targets import load_profile


@pytest.fixture(scope="module")
def avx2():
    return load_profile("x86-avx2")


def test_tiny_build_writes_a_complete_manifest(tiny_onnx, tmp_path, avx2):
    onnx_path = tiny_onnx()
    result = build_artifact(onnx_path, avx2, tmp_path / "art")
    manifest = read_manifest(tmp_path / "art")
    assert manifest.model_sha256 == sha256_file(onnx_path) == sha256_file(tmp_path / "art" / ONNX_FILE)
    assert manifest.library_sha256 == sha256_file(tmp_path / "art" / LIBRARY_FILE)
    assert manifest.profile == "x86-avx2" and manifest.target == avx2.target
    assert manifest.input.shape == [1, 3, 16, 16] and manifest.output.shape == [1, 10]
    assert manifest.tvm_version.startswith("0.27")
    # Preprocessing follows the 16x16 NCHW input (ImageNet's 256/224 ratio); labels: class indices for 10 classes.
    assert manifest.preprocess_config() == PreprocessConfig(resize=18, crop=16)
    assert manifest.labels == "index" and manifest.class_labels().names[9] == "class 9"
    assert manifest.parity["status"] == "passed" and manifest.parity["max_abs_diff"] <= 1e-4
    assert result.parity.passed and not manifest.is_tuned
    # No shipped log matches the tiny model: every kernel got a default schedule, none kept raw lowering.
    sources = manifest.tuning["schedule_sources"]
    assert sum(c["default"] for c in sources.values()) == 6 and not any(c["raw"] or c["log"] for c in sources.values())
    assert manifest.schedule_text() == "default schedules" and "default" in result.schedules


def test_tuning_log_none_keeps_raw_lowering_and_still_passes_parity(tiny_onnx, tmp_path, avx2):
    result = build_artifact(tiny_onnx(), avx2, tmp_path / "raw", tuning_log="none")
    sources = result.manifest.tuning["schedule_sources"]
    assert not any(c["default"] or c["log"] for c in sources.values())
    assert result.parity.passed and result.manifest.schedule_text() == "raw lowering"


def test_batched_build_runs_any_number_of_images(tiny_onnx, tmp_path, avx2):
    onnx_path = tiny_onnx(input_dims=["N", 3, 16, 16])
    build_artifact(onnx_path, avx2, tmp_path / "b4", batch=4)
    module = LocalModule(tmp_path / "b4")
    images = np.random.default_rng(1).standard_normal((6, 3, 16, 16)).astype(np.float32)
    ort = reference.OrtModel(onnx_path)
    np.testing.assert_allclose(module.run_images(images), ort.run(images), atol=1e-4)


def test_parity_failure_fails_the_build_and_keeps_the_old_artifact(tiny_onnx, tmp_path, avx2, monkeypatch):
    onnx_path = tiny_onnx()
    build_artifact(onnx_path, avx2, tmp_path / "art")
    before = (tmp_path / "art" / "manifest.json").read_text()
    # Fault injection: the reference disagrees, as a miscompiled library would.
    real_run = reference.OrtModel.run
    monkeypatch.setattr(reference.OrtModel, "run", lambda self, x: real_run(self, x) + 1e-2)
    with pytest.raises(TvmDeployError, match=r"build failed verification: .*max \|Δ logits\| = 0.01.*FAIL"):
        build_artifact(onnx_path, avx2, tmp_path / "art")
    assert (tmp_path / "art" / "manifest.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_refuses_to_overwrite_a_folder_that_is_not_an_artifact(tiny_onnx, tmp_path, avx2):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(TvmDeployError, match="not an artifact folder"):
        build_artifact(tiny_onnx(), avx2, tmp_path / "precious")
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_missing_tuning_log(tiny_onnx, tmp_path, avx2):
    with pytest.raises(TvmDeployError, match="tuning log folder not found"):
        build_artifact(tiny_onnx(), avx2, tmp_path / "art", tuning_log=tmp_path / "nope")


SHIPPED_AVX2 = next((Path(__file__).resolve().parents[2] / "tuning_logs" / "x86-avx2").glob("tasks-*"))


def test_tuning_log_covering_none_of_the_kernels_is_an_error(tiny_onnx, tmp_path, avx2):
    # The shipped MobileNetV2 log holds valid records, none of them for the tiny model's kernels.
    with pytest.raises(TvmDeployError, match=r"tuning log .* covers none of this model's \d+ kernels for x86-avx2"):
        build_artifact(tiny_onnx(), avx2, tmp_path / "art", tuning_log=SHIPPED_AVX2)
    assert not (tmp_path / "art").exists()


def test_tuning_log_without_a_valid_record_is_an_error(tiny_onnx, tmp_path, avx2):
    folder = tmp_path / "db"
    folder.mkdir()
    (folder / "database_workload.json").write_text('["0x1", "not base64"]\n')
    (folder / "database_tuning_record.json").write_text('{"torn": \n[7, []]\n')
    with pytest.raises(TvmDeployError, match=r"holds no valid tuning record: all 2 line\(s\) are corrupt") as info:
        build_artifact(tiny_onnx(), avx2, tmp_path / "art", tuning_log=folder)
    assert "\n" not in str(info.value)
    (folder / "database_tuning_record.json").write_text("")
    with pytest.raises(TvmDeployError, match=r"holds no tuning record \(database_tuning_record.json is empty\)"):
        build_artifact(tiny_onnx(), avx2, tmp_path / "art", tuning_log=folder)


# x1.0's parity is the shipped-log test below (a default build takes the shipped log: the same build twice cost ~45 s).
@pytest.mark.parametrize("name", ["ppcls_mobilenetv2_x0_25"])
def test_mobilenetv2_parity_with_onnxruntime(exported_onnx, tmp_path, avx2, name):
    result = build_artifact(exported_onnx(name), avx2, tmp_path / name)
    parity = result.parity
    assert parity.passed, parity.summary()
    assert parity.max_abs_diff <= 1e-4 and parity.top5_identical
    manifest = json.loads((tmp_path / name / "manifest.json").read_text())
    assert manifest["model_name"] == name and manifest["weights"] == "random:seed=0"
    assert manifest["output"]["shape"] == [1, 1000]


def test_batch_override_of_a_batch_one_export(tiny_onnx, tmp_path, avx2):
    # Zoo exports fix the batch at 1; building for 4 must still verify against ONNX Runtime.
    result = build_artifact(tiny_onnx(), avx2, tmp_path / "b4", batch=4)
    assert result.parity.passed and result.manifest.input.shape == [4, 3, 16, 16]
    ort = reference.OrtModel(tmp_path / "b4" / ONNX_FILE)
    assert ort.run(np.zeros((4, 3, 16, 16), np.float32)).shape == (4, 10)
    assert result.manifest.extra["source_onnx_sha256"] != result.manifest.model_sha256


@pytest.mark.parametrize("profile_name", ["x86-avx2", "x86-avx512"])
def test_shipped_tuning_log_covers_every_kernel_and_keeps_parity(exported_onnx, tmp_path, profile_name):
    profile = load_profile(profile_name)
    if not profile.runs_on_this_machine:
        pytest.skip(f"this CPU cannot run {profile_name} code (parity needs a local run)")
    result = build_artifact(exported_onnx("torchvision_mobilenet_v2"), profile, tmp_path / "art", tuning_log="shipped")
    tuning = result.manifest.tuning
    # Every task a record can apply to takes one; the rest are merged into blocks (whose kernels get no record).
    assert tuning["tasks_from_database"] == tuning["tasks_total"] > 0, tuning
    assert tuning["tasks_total"] + tuning["tasks_merged"] == 34, tuning
    assert f"tuning_logs/{profile_name}/" in str(tuning["database"])
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.top5_identical
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["model_name"] == "torchvision_mobilenet_v2" and manifest["weights"] == "random:seed=0"
    assert manifest["output"]["shape"] == [1, 1000]


def _width_logs() -> list[Path]:
    """The shipped x86 logs of the card's other widths (x1.0's have the test above)."""
    root = Path(__file__).resolve().parents[2] / "tuning_logs"
    return sorted(
        p
        for profile in ("x86-avx512", "x86-avx2")
        for p in (root / profile).glob("tasks-*")
        if "torchvision_mobilenet_v2" not in json.loads((p / "tuning_meta.json").read_text()).get("models", [])
    )


@pytest.mark.slow
@pytest.mark.parametrize("log", _width_logs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_width_log_keeps_parity(exported_onnx, tmp_path, log):
    """Each shipped log, applied to the model it was tuned for (whatever CPU this is: `shipped`, not `auto`)."""
    profile = load_profile(log.parent.name)
    if not profile.runs_on_this_machine:
        pytest.skip(f"this CPU cannot run {profile.name} code (parity needs a local run; test_avx512.py compiles it)")
    (model,) = json.loads((log / "tuning_meta.json").read_text())["models"]
    result = build_artifact(exported_onnx(model), profile, tmp_path / "art", tuning_log=log)
    tuning = result.manifest.tuning
    # Every conv kernel the build keeps runs a record of the log (the card runs before session 7 tuned only
    # these: their stem, classifier and glue kernels may run the default schedules).
    for op_class in ("depthwise", "pointwise"):
        counts = tuning["schedule_sources"][op_class]
        assert counts["log"] > 0 and counts["default"] == counts["raw"] == 0, (op_class, tuning)
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.top5_identical
