"""Where a device is: a tracker plus a device key, or one RPC server, validated once for every caller."""

from __future__ import annotations

import getpass
import ipaddress
import re
from dataclasses import dataclass

from tvmdeploy.runtime.errors import TvmDeployError, arg

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")  # the tracker splits on ':' and the handshake on spaces
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether listening on `host` stays on this machine (every server here binds only such an address by default)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def exposure_warning(address: str) -> str:
    """What a server listening on `address` beyond this machine prints: it runs any code it is sent."""
    return (
        f"warning: listening on {address}, beyond this machine. A TVM RPC server runs any code it is sent: "
        f"anyone who can reach it can run programs here as user '{getpass.getuser()}'. "
        "Use it only on a trusted network."
    )


@dataclass(frozen=True)
class RpcEndpoint:
    """Where to find a device: a tracker plus a device key, or one RPC server directly."""

    host: str
    port: int
    key: str = ""
    via_tracker: bool = True

    @classmethod
    def parse(cls, address: str, key: str = "", *, via_tracker: bool = True, param: str = "rpc_tracker") -> RpcEndpoint:
        """Validate "HOST:PORT" (IPv6 as "[::1]:9190") and the key; errors name `param`, the address's parameter."""
        host, sep, port_text = (address or "").strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise TvmDeployError(f"{arg(param)} expects HOST:PORT (e.g. 127.0.0.1:9190), got {address!r}", param=param)
        if via_tracker and not key:
            raise TvmDeployError(
                f"{arg(param)} needs a device key too ({arg('rpc_key')}), e.g. the key the board " "registered with", param="rpc_key"
            )
        if key and not _KEY_PATTERN.match(key):
            raise TvmDeployError(f"RPC key {key!r} may use only letters, digits, '.', '_' and '-'", param="rpc_key")
        return cls(host=host, port=int(port_text), key=key, via_tracker=via_tracker)

    @classmethod
    def tracker(cls, address: str, key: str) -> RpcEndpoint:
        """A device with `key`, requested from the tracker at "HOST:PORT"."""
        return cls.parse(address, key, via_tracker=True, param="rpc_tracker")

    @classmethod
    def server(cls, address: str, key: str = "") -> RpcEndpoint:
        """One RPC server at "HOST:PORT", no tracker."""
        return cls.parse(address, key, via_tracker=False, param="rpc_server")

    @classmethod
    def from_options(cls, server: str | None = None, tracker: str | None = None, key: str | None = None) -> RpcEndpoint | None:
        """The endpoint a caller's server / tracker / key options name, or None for a local run: the one rule of
        `tvmdeploy.load` and every verb's --rpc, --rpc-tracker and --rpc-key."""
        if server and tracker:
            raise TvmDeployError(
                f"use either {arg('rpc_server')} HOST:PORT (a server) or {arg('rpc_tracker')} " f"HOST:PORT {arg('rpc_key')} KEY, not both",
                param="rpc_server",
            )
        if tracker and not key:
            raise TvmDeployError(f"{arg('rpc_tracker')} needs {arg('rpc_key')} (the device key, e.g. cortex-a72)", param="rpc_key")
        if key and not (tracker or server):
            raise TvmDeployError(
                f"{arg('rpc_key')} needs {arg('rpc_tracker')} HOST:PORT or {arg('rpc_server')} " "HOST:PORT", param="rpc_key"
            )
        if server:
            return cls.server(server, key or "")
        return cls.tracker(tracker, key or "") if tracker else None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        if self.via_tracker:
            return f"key '{self.key}' at tracker {self.address}"
        return f"RPC server {self.address}"
