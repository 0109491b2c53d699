"""The one error type: one line, the parameter at fault, parameter names spelled for the caller."""

from __future__ import annotations

import pickle

from tvmdeploy.runtime.errors import TvmDeployError, arg, spelling


def test_message_is_one_line_with_its_parameter():
    exc = TvmDeployError("threads must be\n   >= 1", param="threads")
    assert str(exc) == "threads must be >= 1" and exc.param == "threads"
    assert TvmDeployError("no parameter").param is None
    copy = pickle.loads(pickle.dumps(exc))  # crosses process pools
    assert str(copy) == str(exc) and copy.param == "threads"


def test_parameters_are_spelled_for_the_caller():
    assert arg("rpc_key") == "rpc_key"  # Python callers: the API's own names
    with spelling(lambda name: "--" + name.replace("_", "-")):  # what the CLI does
        assert arg("rpc_key") == "--rpc-key"
        with spelling(str.upper):
            assert arg("rpc_key") == "RPC_KEY"
        assert arg("rpc_key") == "--rpc-key"
    assert arg("rpc_key") == "rpc_key"
