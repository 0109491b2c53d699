"""Cross-compilation: ARM profiles give aarch64 ELF libraries; a missing cross compiler names its Debian package."""

import platform
import shutil

import pytest

from tvmdeploy.compile.backends.cross import elf_machine
from tvmdeploy.compile.build import build_artifact
from tvmdeploy.runtime.artifact import LIBRARY_FILE, read_manifest
from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import load_profile, profile_from_dict

needs_cross = pytest.mark.skipif(
    shutil.which("aarch64-linux-gnu-g++") is None or platform.machine() == "aarch64",
    reason="needs the aarch64 cross compiler (apt-get install g++-aarch64-linux-gnu) on a non-ARM host",
)


@needs_cross
@pytest.mark.parametrize("profile_name", ["arm-cortex-a53", "arm-cortex-a72", "arm-cortex-a76"])
def test_arm_profiles_build_aarch64_libraries(tiny_onnx, tmp_path, profile_name):
    profile = load_profile(profile_name)
    result = build_artifact(tiny_onnx(), profile, tmp_path / "art")
    assert elf_machine(tmp_path / "art" / LIBRARY_FILE) == "aarch64"
    manifest = read_manifest(tmp_path / "art")
    assert manifest.arch == "aarch64" and manifest.target["mcpu"] == profile.target["mcpu"]
    # It cannot run here: parity is left to the device, and the manifest says why.
    assert result.parity is None and manifest.parity["status"] == "not-run"


def test_host_library_is_a_host_elf(tiny_onnx, tmp_path):
    build_artifact(tiny_onnx(), load_profile("x86-avx2"), tmp_path / "art", verify=False)
    assert elf_machine(tmp_path / "art" / LIBRARY_FILE) == "x86_64"


def _arm_profile_with_compiler(command: str):
    return profile_from_dict(
        {
            "name": "arm-missing-cc",
            "device": "cpu",
            "arch": "aarch64",
            "target": {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72", "mattr": ["+neon"]},
            "cross_compiler": {"command": command, "package": "g++-aarch64-linux-gnu"},
        }
    )


@pytest.mark.skipif(platform.machine() == "aarch64", reason="an aarch64 host needs no cross compiler")
def test_missing_cross_compiler_names_the_debian_package(tiny_onnx, tmp_path):
    profile = _arm_profile_with_compiler("aarch64-linux-gnu-g++-does-not-exist")
    with pytest.raises(TvmDeployError) as exc:
        build_artifact(tiny_onnx(), profile, tmp_path / "art")
    message = str(exc.value)
    assert "aarch64-linux-gnu-g++-does-not-exist" in message
    assert "apt-get install g++-aarch64-linux-gnu" in message and "\n" not in message
    assert not (tmp_path / "art").exists()  # nothing half-built is left behind


def test_elf_machine_rejects_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not a library")
    with pytest.raises(TvmDeployError, match="not an ELF file"):
        elf_machine(tmp_path / "notes.txt")
    with pytest.raises(TvmDeployError, match="cannot read"):
        elf_machine(tmp_path / "missing.so")
