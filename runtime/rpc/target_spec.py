"""A compare target as written, `NAME[@WHERE]`: an artifact folder or profile, and the device it runs on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.rpc.endpoint import RpcEndpoint


@dataclass(frozen=True)
class RemoteSpec:
    """Where a target runs when not here: a key behind a tracker, or a direct RPC server."""

    key: str | None = None
    tracker: str | None = None  # HOST:PORT; None means the run's --rpc-tracker
    server: str | None = None  # HOST:PORT of a direct RPC server

    def endpoint(self, default_tracker: str | None = None) -> RpcEndpoint:
        """The RPC endpoint: the direct server, or the key behind its tracker (else `default_tracker`, the run's)."""
        tracker = None if self.server else self.tracker or default_tracker
        if not (self.server or tracker):
            raise TvmDeployError(f"device key '{self.key}' needs a tracker: add --rpc-tracker HOST:PORT or tracker= to the target")
        endpoint = RpcEndpoint.from_options(self.server, tracker, self.key)
        assert endpoint is not None  # a server or a tracker was given
        return endpoint

    def __str__(self) -> str:
        if self.server:
            return f"rpc={self.server}" + (f",key={self.key}" if self.key else "")
        return f"key={self.key}" + (f",tracker={self.tracker}" if self.tracker else "")


@dataclass(frozen=True)
class TargetSpec:
    text: str  # as the user wrote it
    name: str  # artifact folder or profile name
    remote: RemoteSpec | None = None


def parse_target(text: str) -> TargetSpec:
    """`NAME[@WHERE]`: NAME an artifact folder or a profile; WHERE `KEY`, `key=KEY[,tracker=HOST:PORT]` or `rpc=HOST:PORT[,key=KEY]`."""
    if "@" not in text or Path(text).exists():
        if not text:
            raise TvmDeployError("empty target")
        return TargetSpec(text, text)
    name, where = text.rsplit("@", 1)
    if not name or not where:
        raise TvmDeployError(f"target {text!r}: expected NAME@KEY, NAME@key=KEY,tracker=HOST:PORT or NAME@rpc=HOST:PORT")
    fields: dict[str, str] = {}
    for part in where.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            if fields or "," in where:
                raise TvmDeployError(f"target {text!r}: write key=KEY when giving several fields")
            key, value = "key", part
        key = key.strip()
        if key not in ("key", "tracker", "rpc") or not value.strip():
            raise TvmDeployError(f"target {text!r}: unknown or empty field {part!r} (use key=, tracker=, rpc=)")
        fields[key] = value.strip()
    if "rpc" in fields and "tracker" in fields:
        raise TvmDeployError(f"target {text!r}: rpc=HOST:PORT (a direct server) excludes tracker=")
    if "tracker" in fields and "key" not in fields:  # noqa: SIM102
        raise TvmDeployError(f"target {text!r}: tracker= needs key=KEY (the device key)")
    for address in (fields.get("tracker"), fields.get("rpc")):
        if address is not None and (address.count(":") != 1 or not address.rsplit(":", 1)[1].isdigit()):
            raise TvmDeployError(f"target {text!r}: {address!r} is not HOST:PORT")
    return TargetSpec(text, name, RemoteSpec(key=fields.get("key"), tracker=fields.get("tracker"), server=fields.get("rpc")))
