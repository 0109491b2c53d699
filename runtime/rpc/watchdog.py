"""A timer that unblocks a TVM RPC call stuck past its deadline (TVM's C++ client has no socket timeouts)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable


def socket_fds() -> set[int]:
    """This process's open socket descriptors (Linux /proc)."""
    fds: set[int] = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return fds
    for name in names:
        try:
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                fds.add(int(name))
        except OSError:
            continue
    return fds


def _shutdown_fd(fd: int) -> None:
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()  # the descriptor belongs to TVM's C++ session: unblock it, never close it


class Watchdog:
    """Unblocks a TVM RPC call stuck past its deadline by shutting down the session's sockets.

    TVM's C++ client has no socket timeouts: a board that hangs (or a port that accepts and never
    answers) would block the call forever. TVM releases the GIL while it waits, so this timer
    thread can run; after a shutdown the blocked read returns and TVM raises, which we turn into
    a one-line error.
    """

    def __init__(self, timeout_s: float, fds: Callable[[], set[int]]):
        self.timeout_s = timeout_s
        self.fds = fds
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        for fd in self.fds():
            _shutdown_fd(fd)

    def __enter__(self) -> Watchdog:
        if self.timeout_s and self.timeout_s > 0:
            self._timer = threading.Timer(self.timeout_s, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer.join()  # deterministic: no thread left holding what `fds` refers to
            self._timer = None
