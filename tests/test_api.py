"""The public API (`import tvmdeploy`): build, load (classify/run/time), evaluate, tune options, profiles, zoo."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tvmdeploy
from tvmdeploy.runtime.errors import TvmDeployError


def test_import_is_light():
    """`import tvmdeploy` (and touching its light names) must not import TVM, ONNX, ONNX Runtime or torch."""
    code = (
        "import sys, tvmdeploy\n"
        "tvmdeploy.TvmDeployError, tvmdeploy.build, tvmdeploy.load, tvmdeploy.tune, tvmdeploy.evaluate, tvmdeploy.bench\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tvm', 'tvm_ffi', 'onnx', 'onnxruntime', 'torch'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_names_resolve():
    for name in tvmdeploy.__all__:
        assert getattr(tvmdeploy, name) is not None
    with pytest.raises(AttributeError):
        tvmdeploy.no_such_name  # noqa: B018


def test_tune_options_are_the_tune_parameters():
    """One dataclass carries every keyword of compile.tuning.tune, with the same defaults."""
    from tvmdeploy.compile.tuning.driver import tune

    params = list(inspect.signature(tune).parameters.values())[2:]
    fields = dataclasses.fields(tvmdeploy.TuneOptions)
    assert [p.name for p in params] == [f.name for f in fields]
    defaults = tvmdeploy.TuneOptions()
    assert all(getattr(defaults, p.name) == p.default for p in params)


def test_profiles_and_zoo():
    names = {p.name for p in tvmdeploy.profiles()}
    assert {"x86-avx2", "x86-avx512", "arm-cortex-a72", "cuda-sm80"} <= names
    zoo = tvmdeploy.zoo()
    assert any(entry.name == "torchvision_mobilenet_v2" for entry in zoo)


def test_load_rejects_bad_rpc_arguments(tmp_path):
    with pytest.raises(TvmDeployError, match="not both"):
        tvmdeploy.load(tmp_path, rpc_tracker="127.0.0.1:9190", rpc_key="k", rpc_server="127.0.0.1:9090")
    with pytest.raises(TvmDeployError, match="device key"):
        tvmdeploy.load(tmp_path, rpc_tracker="127.0.0.1:9190")
    with pytest.raises(TvmDeployError, match="rpc_key needs"):
        tvmdeploy.load(tmp_path, rpc_key="k")
    with pytest.raises(TvmDeployError, match="threads"):
        tvmdeploy.load(tmp_path, threads=0)


def test_errors_name_api_parameters_not_flags(tmp_path, tiny_onnx):
    """Python callers read the API's parameter names (the CLI spells the same messages with its flags)."""
    with pytest.raises(TvmDeployError, match=r"^rpc_server expects HOST:PORT") as info:
        tvmdeploy.load(tmp_path, rpc_server="nohost")
    assert info.value.param == "rpc_server"
    with pytest.raises(TvmDeployError, match=r"^ops: unknown class\(es\) winograd") as info:
        tvmdeploy.tune(tiny_onnx(), "x86-avx2", tvmdeploy.TuneOptions(ops="winograd"))
    assert info.value.param == "ops" and "--" not in str(info.value)


def test_unknown_profile_is_one_error(tmp_path, tiny_onnx):
    with pytest.raises(TvmDeployError, match="no-such-profile"):
        tvmdeploy.build(tiny_onnx(), "no-such-profile", tmp_path / "art")


@pytest.fixture(scope="module")
def tiny_artifact(tmp_path_factory, tiny_classifier_factory):
    """A tiny classifier (3x32x32 input, 10 classes) built for x86-avx2 at batch 2, by profile name."""
    from tvmdeploy.targets import load_profile

    if not load_profile("x86-avx2").runs_on_this_machine:
        pytest.skip("needs an x86-64 host with AVX2 (the x86-avx2 profile)")
    folder = tmp_path_factory.mktemp("api")
    onnx_path = tiny_classifier_factory(folder / "tiny.onnx", input_shape=(2, 3, 32, 32))
    result = tvmdeploy.build(onnx_path, "x86-avx2", folder / "art", tuning_log="defaults")
    return result


def test_build_returns_the_verified_result(tiny_artifact):
    result = tiny_artifact
    assert isinstance(result, tvmdeploy.BuildResult)
    assert result.parity is not None and result.parity.passed
    assert result.manifest.profile == "x86-avx2" and result.manifest.batch == 2
    assert (result.artifact_dir / "manifest.json").is_file()


def test_bench_times_the_artifact_against_onnx_runtime(tiny_artifact):
    result = tvmdeploy.bench(tiny_artifact.artifact_dir, threads=1, runs=4, warmup=1, min_seconds=0)
    assert isinstance(result, tvmdeploy.BenchResult) and result.ort_where == "host" and result.parity.passed
    assert [name.split()[0] for name in result.rows] == ["TVM", "ONNX"] and result.threads == 1
    with pytest.raises(TvmDeployError, match="runs must be >= 1"):
        tvmdeploy.bench(tiny_artifact.artifact_dir, runs=0)
    with pytest.raises(TvmDeployError, match="rpc_key needs"):
        tvmdeploy.bench(tiny_artifact.artifact_dir, rpc_key="k")


def test_build_takes_a_profile_object(tiny_onnx, tmp_path, avx2_profile):
    result = tvmdeploy.build(tiny_onnx(), avx2_profile, tmp_path / "art", tuning_log=None, verify=False)
    assert result.manifest.profile == "x86-avx2" and result.parity is None


def _image(color) -> Image.Image:
    return Image.new("RGB", (40, 36), color)


def test_load_classify_run_time(tiny_artifact, tmp_path):
    photo = tmp_path / "red.png"
    _image((250, 5, 5)).save(photo)
    with tvmdeploy.load(tiny_artifact.artifact_dir, threads=1) as model:
        assert isinstance(model.module, tvmdeploy.ArtifactModule)  # the shared Protocol
        assert model.manifest.model_name == tiny_artifact.manifest.model_name
        assert model.description == "local cpu" and not model.emulated
        # three images through a batch-2 library: paths and PIL images mixed, one padded batch
        tops = model.classify([photo, _image((5, 250, 5)), str(photo)], topk=3)
        assert len(tops) == 3 and all(len(top) == 3 for top in tops)
        first = tops[0][0]
        assert isinstance(first, tvmdeploy.Prediction)
        assert 0 <= first.index < 10 and first.label == f"class {first.index}" and 0 < first.probability <= 1
        assert [p.index for p in tops[0]] == [p.index for p in tops[2]]  # the same file, as a path or a str
        assert [p.probability for p in tops[0]] == pytest.approx([p.probability for p in tops[2]])
        assert sum(p.probability for p in tops[0]) <= 1 + 1e-6
        assert model.classify(photo, topk=1)[0][0].index == first.index  # one image, not a list

        x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
        logits = model.run(x)
        assert logits.shape == (3, 10)
        np.testing.assert_allclose(model.run(x[:2]), logits[:2], rtol=1e-5, atol=1e-5)

        stats = model.time(repeat=3)
        assert isinstance(stats, tvmdeploy.LatencyStats) and stats.n == 3 and stats.median_ms > 0


def test_classify_names_unreadable_images(tiny_artifact, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with tvmdeploy.load(tiny_artifact.artifact_dir) as model:
        with pytest.raises(TvmDeployError, match=r"1 of 2 image\(s\).*broken\.jpg"):
            model.classify([_image((1, 2, 3)), broken])
        streamed = list(model.classify_stream([broken, _image((1, 2, 3))], topk=2))
        assert [item.ok for item in streamed] == [False, True] and streamed[1].path is None
        with pytest.raises(TvmDeployError, match="topk"):
            model.classify([broken], topk=0)


def test_remote_module_implements_the_protocol():
    from tvmdeploy.runtime.loader import LocalModule
    from tvmdeploy.runtime.module import ArtifactModule
    from tvmdeploy.runtime.rpc import RemoteModule

    members = ("run", "run_images", "time", "close", "description", "emulated")
    for cls in (LocalModule, RemoteModule):
        assert all(hasattr(cls, name) for name in members), cls
    assert ArtifactModule is tvmdeploy.ArtifactModule


def test_export_is_public_api_and_refuses_an_unknown_model_before_importing_torch(tmp_path):
    code = (
        "import sys, tvmdeploy\n"
        "try:\n"
        f"    tvmdeploy.export('resnet50', {str(tmp_path / 'm.onnx')!r})\n"
        "except tvmdeploy.TvmDeployError as exc:\n"
        "    print('error:', exc)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "error: unknown" in out and "resnet50" in out and out.strip().endswith("False")


@pytest.fixture(scope="module")
def labelled_folder(tiny_artifact, tmp_path_factory):
    """(flat folder, ground-truth file): five photos labelled with the artifact's own top-1, and one broken file."""
    folder = tmp_path_factory.mktemp("eval") / "flat"
    folder.mkdir()
    rng = np.random.default_rng(5)
    paths = []
    for i in range(5):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 256, (30 + 4 * i, 44, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    with tvmdeploy.load(tiny_artifact.artifact_dir, threads=1) as model:
        labels = [top[0].index for top in model.classify(paths, topk=1)]
    (folder / "p9.png").write_bytes(b"not a png")  # sorts last: the last label line is its
    gt = folder.parent / "gt.txt"
    gt.write_text("".join(f"{label}\n" for label in labels) + "3\n")
    return folder, gt


def test_evaluate_artifact_with_reference(tiny_artifact, labelled_folder):
    folder, gt = labelled_folder
    result = tvmdeploy.evaluate(tiny_artifact.artifact_dir, folder, ground_truth=gt, reference=True, threads=1, progress=False)
    assert isinstance(result, tvmdeploy.EvalResult)
    assert (result.images, result.total, result.batch_size, result.layout) == (5, 6, 2, "ground-truth-file")
    assert result.top1 == 1.0 and result.top5 == 1.0  # its own labels
    assert result.with_reference and result.agreement_top1 == 1.0 and result.agreement_top5_set == 1.0
    assert result.runner == "TVM x86-avx2 (local cpu)" and result.model == tiny_artifact.manifest.model_name
    assert [Path(path).name for path, _ in result.unreadable] == ["p9.png"]
    assert result.seconds > 0 and result.images_per_second == pytest.approx(5 / result.seconds)
    report = result.to_dict()
    assert list(report)[:8] == ["model", "runner", "weights", "folder", "layout", "batch_size", "seconds", "images_per_second"]
    assert report["folder"] == str(folder) and report["reference_compared"] == 5 and report["top5_correct"] == 5
    assert report["unreadable"][0]["path"].endswith("p9.png") and "not an image" in report["unreadable"][0]["reason"]


def test_evaluate_onnx_with_limit_and_batch(tiny_artifact, labelled_folder):
    """The same model on ONNX Runtime: the first three images, three steps of one; no reference run."""
    folder, gt = labelled_folder
    onnx = tiny_artifact.artifact_dir / "model.onnx"
    result = tvmdeploy.evaluate(None, folder, onnx=onnx, ground_truth=gt, batch_size=1, limit=3, progress=False)
    assert (result.images, result.total, result.batch_size) == (3, 3, 1)
    assert result.top1 == 1.0 and result.unreadable == []
    assert result.runner.startswith("ONNX Runtime ") and result.runner.endswith(" (host)")
    assert not result.with_reference and result.agreement_top1 is None and result.to_dict()["reference_compared"] == 0


def test_evaluate_rejects_bad_arguments(tmp_path):
    """Checked before anything is opened; the messages name the API's parameters."""
    with pytest.raises(TvmDeployError, match=r"^give either an artifact folder or onnx M\.onnx \(not both\)$"):
        tvmdeploy.evaluate(tmp_path, tmp_path, onnx=tmp_path / "m.onnx")
    with pytest.raises(TvmDeployError, match="either an artifact folder"):
        tvmdeploy.evaluate(None, tmp_path)
    with pytest.raises(TvmDeployError, match=r"^reference and rpc\* apply to an artifact, not to onnx$"):
        tvmdeploy.evaluate(None, tmp_path, onnx=tmp_path / "m.onnx", reference=True)
    with pytest.raises(TvmDeployError, match=r"apply to an artifact"):
        tvmdeploy.evaluate(None, tmp_path, onnx=tmp_path / "m.onnx", rpc_server="127.0.0.1:9090")
    with pytest.raises(TvmDeployError, match=r"^limit must be >= 1$") as info:
        tvmdeploy.evaluate(tmp_path, tmp_path, limit=0)
    assert info.value.param == "limit"
    with pytest.raises(TvmDeployError, match=r"^threads must be >= 1, got 0$"):
        tvmdeploy.evaluate(tmp_path, tmp_path, threads=0)
