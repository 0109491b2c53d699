"""Comparison library: block timing, failure rows, baselines, kernel classification and breakdown."""

from types import SimpleNamespace

import numpy as np
import pytest

from tvmdeploy.compile.measure.compare import CompareConfig, compare
from tvmdeploy.compile.measure.kernel_breakdown import classify_call, format_breakdown, kernel_breakdown
from tvmdeploy.runtime.errors import TvmDeployError


class FakeModule:
    """Stands in for LocalModule/RemoteModule: runs ORT on the same ONNX so parity passes."""

    def __init__(self, onnx_path, batch, emulated=False, offset=0.0):
        from tvmdeploy.compile.measure.reference import OrtModel

        self.ort = OrtModel(onnx_path)
        self.emulated = emulated
        self.description = "remote cpu at 127.0.0.1:1; EMULATED" if emulated else None
        self.offset = offset

    def run(self, x):
        return self.ort.run(x) + self.offset

    def time(self, x, number=1, repeat=1):
        return [0.002] * repeat

    def close(self):
        self.ort = None


def _fake_artifact(folder, onnx_path, batch=1):
    """A manifest-only artifact folder (no library): enough for resolve_targets and the fake opener."""
    import shutil

    from tvmdeploy.runtime.artifact import Manifest, TensorSpec, sha256_file, write_manifest

    folder.mkdir(parents=True)
    shutil.copyfile(onnx_path, folder / "model.onnx")
    write_manifest(
        folder,
        Manifest(
            model_name="tiny",
            model_sha256=sha256_file(onnx_path),
            weights="unknown",
            labels="imagenet1k",
            profile="fake-profile",
            device="cpu",
            arch="x86_64",
            cpu_flags=[],
            threads=1,
            target={"kind": "llvm"},
            tvm_version="0",
            input=TensorSpec("input", [batch, 3, 16, 16]),
            output=TensorSpec("logits", [batch, 10]),
            preprocess={},
            library_sha256="0" * 64,
            tuning={"database": "logs", "tasks_total": 9, "tasks_from_database": 7},
        ),
    )
    return folder


def test_failures_become_rows_and_the_rest_completes(tiny_onnx, tmp_path):
    onnx_path = tiny_onnx()
    good = _fake_artifact(tmp_path / "good", onnx_path)
    board = _fake_artifact(tmp_path / "board", onnx_path)
    wrong = _fake_artifact(tmp_path / "wrong", onnx_path)

    def opener(artifact, remote, threads):
        if artifact == wrong:
            return FakeModule(onnx_path, 1, offset=1.0)  # numerically wrong: parity must say so
        if remote is not None and remote.key == "nobody":
            raise TvmDeployError("no free device for key 'nobody'")
        return FakeModule(onnx_path, 1, emulated=remote is not None)

    config = CompareConfig(
        targets=[str(good), f"{board}@qemu-aarch64", f"{good}@nobody", str(wrong), "no-such-thing", "x86-avx2"],
        model=onnx_path,
        out_dir=tmp_path / "out",
        warmup=1,
        runs=3,
        min_seconds=0,
        threads=1,
        baselines=("onnxruntime", "pytorch"),
        rpc_tracker="127.0.0.1:9190",
    )
    config_without_model = CompareConfig(targets=["x86-avx2"], out_dir=tmp_path / "out", baselines=())
    rows = compare(config, opener)
    by_label = {(r.label, r.artifact, r.device[:6]): r for r in rows}
    assert [r.kind for r in rows[:2]] == ["onnxruntime", "pytorch"]
    ort, torch_row = rows[0], rows[1]
    assert ort.status == "ok" and ort.ratio_to_ort == 1.0 and ort.parity == "reference"
    assert torch_row.status == "skipped"  # a foreign ONNX has no torch twin (or torch is missing)
    tvm = [r for r in rows if r.kind == "tvm"]
    assert [r.status for r in tvm] == ["ok", "ok", "failed", "ok", "failed", "ok"]
    assert tvm[0].tuning == "tuned 7/9 tasks" and tvm[0].parity.startswith("pass")
    assert tvm[1].emulated and tvm[1].stats.median_ms == pytest.approx(2.0)  # the device timer's 2 ms
    # The remote target's own ORT row follows it: this device offers none, so no ratio (never the host's ORT).
    device_ort = rows[rows.index(tvm[1]) + 1]
    assert device_ort.kind == "onnxruntime" and device_ort.status == "skipped" and device_ort.emulated
    assert tvm[1].ratio_to_ort is None and tvm[0].ratio_to_ort is not None
    assert "no free device" in tvm[2].error
    assert tvm[3].parity.startswith("FAIL")
    assert "neither an artifact folder nor a profile" in tvm[4].error
    # a profile target is built from --model; the tiny model builds and runs here
    assert tvm[5].label == "TVM x86-avx2" and tvm[5].artifact.endswith("x86-avx2-b1")
    assert by_label and all(r.batch == 1 for r in rows)
    rows = compare(config_without_model, opener)
    assert rows[0].status == "failed" and "needs model M.onnx" in rows[0].error  # the API's name (the CLI: --model)


def test_larger_batch_builds_profiles_twice_and_rebatches_ort(tiny_onnx, tmp_path):
    onnx_path = tiny_onnx()
    config = CompareConfig(
        targets=["x86-avx2"],
        model=onnx_path,
        out_dir=tmp_path / "out",
        batch=2,
        warmup=0,
        runs=2,
        min_seconds=0,
        threads=1,
        baselines=("onnxruntime",),
    )
    rows = compare(config)  # the library's own opener
    assert [(r.kind, r.batch, r.status) for r in rows] == [
        ("onnxruntime", 1, "ok"),
        ("tvm", 1, "ok"),
        ("onnxruntime", 2, "ok"),
        ("tvm", 2, "ok"),
    ]
    assert all(r.parity.startswith("pass") for r in rows if r.kind == "tvm")
    assert rows[3].images_per_second == pytest.approx(2 / (rows[3].stats.median_ms / 1e3))
    assert (tmp_path / "out" / "x86-avx2-b2" / "manifest.json").is_file()
    logged = []
    compare(config, log=logged.append)  # second run reuses both builds
    assert sum("reusing" in m for m in logged) == 2


@pytest.mark.parametrize(
    "name, shapes, first, expected",
    [
        (
            "fused_conv2d_add_clip",
            [(1, 224, 224, 3), (8, 3, 3, 3), (1, 1, 1, 8), (1, 112, 112, 8)],
            True,
            ("stem", "stem 3x3 s2 3->8 @112x112"),
        ),
        (
            "fused_conv2d1_add",
            [(1, 112, 112, 8), (8, 1, 1, 8), (1, 1, 1, 8), (1, 112, 112, 8)],
            False,
            ("pointwise", "pointwise-project 8->8 @112x112"),
        ),
        (
            "fused_conv2d2_add",
            [(1, 112, 112, 8), (8, 3, 3, 1), (1, 1, 1, 8), (1, 56, 56, 8)],
            False,
            ("depthwise", "depthwise 3x3 s2 c8 @56x56"),
        ),
        (
            "fused_conv2d4_add",
            [(1, 56, 56, 4), (24, 1, 1, 4), (1, 1, 1, 24), (1, 56, 56, 24)],
            False,
            ("pointwise", "pointwise-expand 4->24 @56x56"),
        ),
        # a tuned build's repacked weight: another shape, the same element count
        (
            "fused_conv2d9_add",
            [(1, 7, 7, 240), (5, 3, 16, 4, 20), (1, 1, 1, 80), (1, 7, 7, 80)],
            False,
            ("pointwise", "pointwise-project 240->80 @7x7"),
        ),
        ("fused_conv2d5", [(1, 8, 56, 56), (8, 1, 3, 3), (1, 8, 56, 56)], False, ("depthwise", "depthwise 3x3 c8 @56x56")),
        # merged blocks (schedules/fusion.py): data, each stage's weight and bias, [residual], output
        (
            "fused_block01_prepacked",
            [(1, 112, 112, 16), (2, 1, 1, 16, 48), (1, 1, 1, 96), (2, 3, 3, 1, 48), (1, 1, 1, 96), (1, 56, 56, 96)],
            False,
            ("block", "expand 16->96, depthwise s2 @56x56"),
        ),
        (
            "fused_block11_prepacked",
            [
                (1, 56, 56, 24),
                (3, 1, 1, 24, 48),
                (1, 1, 1, 144),
                (3, 3, 3, 1, 48),
                (1, 1, 1, 144),
                (1, 1, 1, 144, 24),
                (1, 1, 1, 24),
                (1, 56, 56, 24),
                (1, 56, 56, 24),
            ],
            False,
            ("block", "expand 24->144, depthwise, project ->24 @56x56"),
        ),
        ("fused_matmul_add", [(1, 1280), (1280, 1000), (1000,), (1, 1000)], False, ("head", "classifier")),
        ("mean1", [(1, 7, 7, 1280), (1, 1, 1, 1280)], False, ("head", "global pool")),
        ("transpose1", [(1, 3, 224, 224), (1, 224, 224, 3)], False, ("other", "transpose")),
        ("vm.builtin.alloc_tensor", [], False, ("vm", "vm.builtin.alloc_tensor")),
    ],
)
def test_classify_call(name, shapes, first, expected):
    nhwc = not name == "fused_conv2d5"
    assert classify_call(name, shapes, first_conv=first, nhwc=nhwc) == expected


class FakeVM:
    """Calls the instrument around a fixed call sequence, as the Relax VM does."""

    CALLS = [
        ("vm.builtin.alloc_storage", []),
        ("fused_conv2d_add", [np.zeros((1, 8, 8, 3)), np.zeros((4, 3, 3, 3)), np.zeros((1, 4, 4, 4))]),
        ("fused_conv2d1_add", [np.zeros((1, 4, 4, 4)), np.zeros((4, 3, 3, 1)), np.zeros((1, 4, 4, 4))]),
        ("fused_conv2d1_add", [np.zeros((1, 4, 4, 4)), np.zeros((4, 3, 3, 1)), np.zeros((1, 4, 4, 4))]),
        ("fused_matmul", [np.zeros((1, 4)), np.zeros((4, 10)), np.zeros((1, 10))]),
    ]

    def __init__(self):
        self.instrument = None

    def set_instrument(self, fn):
        self.instrument = fn

    def main(self):
        for name, args in self.CALLS:
            if self.instrument:
                self.instrument(None, name, True, None, *args)
                self.instrument(None, name, False, None, *args)


def test_kernel_breakdown_with_a_fake_vm():
    vm = FakeVM()
    module = SimpleNamespace(vm=vm, manifest=SimpleNamespace(device="cpu"), run=lambda x: vm.main())
    b = kernel_breakdown(module, np.zeros(1), repeats=3, warmup=1)
    assert vm.instrument is None  # the hook is removed afterwards
    classes = {k.name: (k.op_class, k.calls) for k in b.kernels}
    assert classes == {
        "fused_conv2d_add": ("stem", 1),
        "fused_conv2d1_add": ("depthwise", 2),
        "fused_matmul": ("head", 1),
        "vm builtins": ("vm", 1),
    }
    assert list(b.by_class()) == ["stem", "depthwise", "head", "vm"]
    text = format_breakdown(b)
    assert "| depthwise | 1 | 2 |" in text and "fused_conv2d1_add" in text


def test_breakdown_refuses_a_remote_module():
    with pytest.raises(TvmDeployError, match="local artifact"):
        kernel_breakdown(SimpleNamespace(manifest=None), np.zeros(1))


def test_a_remote_target_is_compared_with_onnx_runtime_on_its_own_device(tiny_onnx, tmp_path, native_board):
    """Per target, the default schedules and the given log, and ONNX Runtime where the target runs: here, or on
    the device (a board server run natively here: its ORT and the TVM module timed there in alternation)."""
    onnx_path = tiny_onnx()
    service = native_board
    config = CompareConfig(
        targets=["x86-avx2", f"x86-avx2@rpc=127.0.0.1:{service.port},key={service.key}"],
        model=onnx_path,
        out_dir=tmp_path / "out",
        warmup=1,
        runs=3,
        min_seconds=0,
        threads=1,
        baselines=("onnxruntime",),
        tuning_logs={"x86-avx2": "shipped"},  # no shipped log fits the tiny model: the "tuned" build finds none
    )
    rows = compare(config)
    assert all(r.status == "ok" for r in rows), [(r.label, r.error) for r in rows]
    labels = [(r.label.removeprefix("TVM ") if r.kind == "tvm" else r.kind, bool(r.device.startswith("remote"))) for r in rows]
    assert labels == [
        ("onnxruntime", False),
        ("x86-avx2", False),
        ("x86-avx2 (tuned)", False),
        ("x86-avx2", True),
        ("onnxruntime", True),
        ("x86-avx2 (tuned)", True),
        ("onnxruntime", True),
    ]
    host_ort, remote_tvm, device_ort = rows[0], rows[3], rows[4]
    assert rows[1].ratio_to_ort == pytest.approx(rows[1].stats.median_ms / host_ort.stats.median_ms)
    assert remote_tvm.ratio_to_ort == pytest.approx(remote_tvm.stats.median_ms / device_ort.stats.median_ms)
    assert device_ort.ratio_to_ort == 1.0 and device_ort.parity.startswith("pass") and remote_tvm.parity.startswith("pass")
    assert (tmp_path / "out" / "x86-avx2-tuned-b1" / "manifest.json").is_file()
