"""The one exception type for user errors, shared by every layer (it lives at the bottom).

Messages name the Python API's parameters (`rpc_key`), never command-line flags: `arg("rpc_key")`
spells a parameter for whoever is calling. Python callers see the name itself; the command line
runs under `spelling(...)` with its own names, so the same message reads `--rpc-key` there.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_SPELLING: contextvars.ContextVar[Callable[[str], str] | None] = contextvars.ContextVar("tvmdeploy_spelling", default=None)


def arg(name: str) -> str:
    """How the caller spells the API parameter `name`: the name itself, or what `spelling` maps it to."""
    spell = _SPELLING.get()
    return name if spell is None else spell(name)


@contextmanager
def spelling(spell: Callable[[str], str]) -> Iterator[None]:
    """Within this block, `arg(name)` is `spell(name)` (the CLI: the parameter's flag)."""
    token = _SPELLING.set(spell)
    try:
        yield
    finally:
        _SPELLING.reset(token)


class TvmDeployError(Exception):
    """A problem with the user's input or environment, shown as one line `error: ...`.

    `param`, when known, is the API parameter at fault (e.g. "rpc_key"). Bugs are not TvmDeployError:
    they keep their traceback.
    """

    def __init__(self, message: str, *, param: str | None = None):
        # One line: the CLI prints it after "error: " and nothing else.
        super().__init__(" ".join(str(message).split()))
        self.param = param
