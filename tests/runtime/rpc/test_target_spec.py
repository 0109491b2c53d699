"""Compare targets as written: NAME[@WHERE] parsing, and the RPC endpoint a remote target names."""

import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc.target_spec import RemoteSpec, parse_target


@pytest.mark.parametrize(
    "text, name, remote",
    [
        ("build/x86", "build/x86", None),
        ("x86-avx2", "x86-avx2", None),
        ("build/a72@qemu-aarch64", "build/a72", RemoteSpec(key="qemu-aarch64")),
        ("arm-cortex-a72@key=k,tracker=127.0.0.1:9190", "arm-cortex-a72", RemoteSpec(key="k", tracker="127.0.0.1:9190")),
        ("a@rpc=localhost:9090", "a", RemoteSpec(server="localhost:9090")),
        ("a@rpc=localhost:9090,key=qemu-aarch64", "a", RemoteSpec(key="qemu-aarch64", server="localhost:9090")),
    ],
)
def test_parse_target(text, name, remote):
    spec = parse_target(text)
    assert (spec.name, spec.remote) == (name, remote)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a@", "expected NAME@KEY"),
        ("a@tracker=h:1", "tracker= needs key="),
        ("a@rpc=h:1,tracker=h:2", "excludes"),
        ("a@rpc=nohostport", "not HOST:PORT"),
        ("a@colour=red", "unknown or empty field"),
        ("a@k,tracker=h:1", "write key=KEY"),
    ],
)
def test_parse_target_errors(text, message):
    with pytest.raises(TvmDeployError, match=message):
        parse_target(text)


def test_existing_path_with_at_sign_is_a_path(tmp_path):
    folder = tmp_path / "odd@name"
    folder.mkdir()
    assert parse_target(str(folder)).remote is None


def test_remote_spec_endpoint_takes_the_runs_tracker_when_it_names_none():
    assert str(RemoteSpec(key="k").endpoint("127.0.0.1:9190")) == "key 'k' at tracker 127.0.0.1:9190"
    assert str(RemoteSpec(key="k", tracker="h:1").endpoint("127.0.0.1:9190")) == "key 'k' at tracker h:1"
    assert str(RemoteSpec(key="k", server="h:2").endpoint("127.0.0.1:9190")) == "RPC server h:2"
    with pytest.raises(TvmDeployError, match="device key 'k' needs a tracker"):
        RemoteSpec(key="k").endpoint(None)
