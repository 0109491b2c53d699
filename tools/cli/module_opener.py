"""The command line's side of opening an artifact where it runs: --threads and the --rpc* flags.

The verbs pass the flags to the public API (`tvmdeploy.load`, `bench`, `evaluate`), whose one rule
(`RpcEndpoint.from_options`) checks their combination with errors that name the flags.
"""

from __future__ import annotations

import argparse

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.module import DEFAULT_RPC_CALL_TIMEOUT_S, DEFAULT_RPC_TIMEOUT_S

__all__ = ["DEFAULT_RPC_CALL_TIMEOUT_S", "DEFAULT_RPC_TIMEOUT_S", "add_rpc_arguments", "thread_count"]


def thread_count(text: str) -> int:
    """argparse type of every verb's --threads: an integer >= 1 (0 or less is no thread count)."""
    try:
        value = int(text)
    except ValueError:
        raise TvmDeployError(f"--threads must be an integer >= 1, got '{text}'") from None
    if value < 1:
        raise TvmDeployError(f"--threads must be >= 1, got {value}")
    return value


def add_rpc_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("remote device (TVM RPC)")
    group.add_argument("--rpc-tracker", metavar="HOST:PORT", help="request a device from this RPC tracker")
    group.add_argument(
        "--rpc-key",
        metavar="KEY",
        help="device key (e.g. cortex-a72): the one registered with the tracker, or the key a direct server expects",
    )
    group.add_argument("--rpc", metavar="HOST:PORT", help="connect directly to an RPC server")
    group.add_argument(
        "--rpc-timeout",
        type=float,
        default=DEFAULT_RPC_TIMEOUT_S,
        metavar="S",
        help=f"seconds to wait for a device before giving up (default {DEFAULT_RPC_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--rpc-call-timeout",
        type=float,
        default=DEFAULT_RPC_CALL_TIMEOUT_S,
        metavar="S",
        help="seconds one call on the device may take before it counts as hung "
        f"(default {DEFAULT_RPC_CALL_TIMEOUT_S:g}: an emulated board needs seconds per image)",
    )
