"""Target profiles: every shipped profile validates and builds a TVM target; bad data is refused clearly."""

import platform

import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.targets import load_profile, profile_from_dict, profile_names

REQUIRED = {
    "x86-avx2",
    "x86-avx512",
    "cuda-sm80",
    "cuda-sm90",
    "arm-cortex-a72",
    "arm-cortex-a53",
    "arm-cortex-a76",
    "host",
}


def minimal(**overrides):
    data = {"name": "p", "device": "cpu", "arch": "x86_64", "target": {"kind": "llvm", "mcpu": "haswell"}}
    data.update(overrides)
    return data


def test_required_profiles_ship():
    assert REQUIRED <= set(profile_names())


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_makes_a_tvm_target(name):
    import tvm

    profile = load_profile(name)
    target = tvm.target.Target(profile.target)
    assert target.kind.name == profile.target["kind"]
    if profile.device == "cuda":
        assert target.host is not None and target.host.kind.name == "llvm"


def test_profile_is_frozen_and_target_is_a_copy():
    profile = load_profile("x86-avx2")
    with pytest.raises(AttributeError):
        profile.name = "other"
    profile.target["mcpu"] = "changed"
    assert load_profile("x86-avx2").target["mcpu"] == "haswell"


def test_arm_profiles_name_their_cross_compiler_package():
    for name in ("arm-cortex-a72", "arm-cortex-a53", "arm-cortex-a76"):
        profile = load_profile(name)
        assert profile.arch == "aarch64"
        assert profile.cross_compiler.command == "aarch64-linux-gnu-g++"
        assert profile.cross_compiler.package == "g++-aarch64-linux-gnu"
        assert profile.target["mtriple"] == "aarch64-linux-gnu"
        assert profile.rpc_key


def test_host_profile_detects_this_machine():
    profile = load_profile("host")
    assert profile.arch == platform.machine()
    assert profile.target["mcpu"] not in ("", "native")
    assert profile.target["num-cores"] >= 1
    assert profile.runs_on_this_machine


def test_unknown_profile_lists_known_ones():
    with pytest.raises(TvmDeployError, match="unknown profile 'x86-avx3'.*x86-avx2"):
        load_profile("x86-avx3")


def test_user_profile_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndevice = "cpu"\narch = "x86_64"\n[target]\nkind = "llvm"\nmcpu = "znver3"\n')
    assert load_profile(str(path)).target["mcpu"] == "znver3"
    path.write_text("name = [broken")
    with pytest.raises(TvmDeployError, match="invalid TOML"):
        load_profile(str(path))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"device": "tpu"}, "device must be one of"),
        ({"arch": "riscv64"}, "arch must be one of"),
        ({"target": {"kind": "vulkan"}}, "target.kind"),
        ({"device": "cuda", "target": {"kind": "cuda", "arch": "sm_80"}}, "needs a 'host'"),
        ({"device": "cuda"}, "does not match device"),
        ({"threads": -1}, "threads must be"),
        ({"threads": True}, "threads must be"),
        ({"tuning_trials": 0}, "tuning_trials"),
        ({"cross_compiler": {"command": "x"}}, "cross_compiler"),
        ({"cpu_flags": "avx512f"}, "cpu_flags"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
def test_invalid_profiles_are_refused(overrides, message):
    with pytest.raises(TvmDeployError, match=message):
        profile_from_dict(minimal(**overrides))


def test_missing_name_is_refused():
    data = minimal()
    del data["name"]
    with pytest.raises(TvmDeployError, match="missing required field 'name'"):
        profile_from_dict(data)
