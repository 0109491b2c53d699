"""Real mobile architectures from their packages' model code (random weights): each builds with parity, every kernel
scheduled by a default rule, on both x86 profiles and on Arm (compile only).

Each architecture is built once, on one x86 profile, alternating (a build costs 20-50 s of LLVM here; both
profiles share every rule); MNASNet-A1 (squeeze-and-excitation, 5x5 depthwise) is also compiled for the Arm
Cortex-A72. The input is 128x128 (TF "same" padding is static at the exported size).
"""

from __future__ import annotations

import pytest

from tvmdeploy.compile.models.architectures import ARCHITECTURES

pytest.importorskip("torch", reason="the architectures are exported from torch (the [export] extra)")
SIZE = 128
PROFILES = ("x86-avx512", "x86-avx2")
CASES = [(name, PROFILES[i % 2]) for i, name in enumerate(ARCHITECTURES)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("architectures")

    def export(name: str):
        from tvmdeploy.compile.models.architectures import export_architecture

        path = folder / f"{name}.onnx"
        if not path.exists():
            pytest.importorskip(ARCHITECTURES[name].package, reason="make setup installs requirements-corpus.lock")
            export_architecture(name, path, size=SIZE)
        return path

    return export


@pytest.mark.slow
@pytest.mark.parametrize(("name", "profile_name"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_architecture_builds_with_parity_and_a_default_rule_for_every_kernel(exported, tmp_path, name, profile_name):
    from tvmdeploy.compile.build import build_artifact
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.targets import load_profile

    profile = load_profile(profile_name)
    path = exported(name)
    if not profile.runs_on_this_machine:
        # Compile-only here: the same rules must still take every kernel.
        compiled = compile_relax(import_onnx(path)[0], profile)
        assert compiled.raw_kernels == {}, compiled.raw_kernels
        return
    result = build_artifact(path, profile, tmp_path / "art", tuning_log="defaults")
    tuning = result.manifest.tuning
    assert tuning["raw_kernels"] == {}, tuning["raw_kernels"]
    assert all(c["raw"] == 0 and c["rule failed"] == 0 for c in tuning["schedule_sources"].values())
    assert result.parity.passed and result.parity.top5_identical, result.parity.summary()
    assert result.parity.max_abs_logit > 0.1  # randomised batch norms keep the logits away from zero (1e-5 fresh)


@pytest.mark.slow
def test_an_architecture_compiles_for_arm_with_every_kernel_scheduled(exported):
    from tvmdeploy.compile.frontend import import_onnx
    from tvmdeploy.compile.pipeline import compile_relax
    from tvmdeploy.targets import load_profile

    compiled = compile_relax(import_onnx(exported("mnasnet_a1"))[0], load_profile("arm-cortex-a72"))
    assert compiled.raw_kernels == {}, compiled.raw_kernels
    assert {"depthwise", "pointwise", "dense"} <= set(compiled.schedule_sources)
    assert all(c["default"] > 0 for c in compiled.schedule_sources.values())
