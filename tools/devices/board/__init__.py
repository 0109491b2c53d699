"""The emulated aarch64 board: its root (root.py: built once, cached) and its RPC servers under qemu-user (servers.py)."""

from tvmdeploy.tools.devices.board.root import (
    ARCHES,
    BOARD_DIR_ENV,
    DEFAULT_KEY,
    BoardRoot,
    board_dir,
    resolve_packages,
)
from tvmdeploy.tools.devices.board.servers import BoardServer, board_is_emulated, ensure_built, start, status, stop

__all__ = [
    "ARCHES",
    "BOARD_DIR_ENV",
    "DEFAULT_KEY",
    "BoardRoot",
    "BoardServer",
    "board_dir",
    "board_is_emulated",
    "ensure_built",
    "resolve_packages",
    "start",
    "status",
    "stop",
]
