"""Imports point one way, in every module of every layer: tools -> tvmdeploy (API) -> compile -> targets, runtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Layer folder -> the tvmdeploy packages its modules may import (their own included).
ALLOWED = {
    "runtime": ("tvmdeploy.runtime",),  # runs on boards: nothing of ours above it
    "targets": ("tvmdeploy.targets", "tvmdeploy.runtime"),
    "compile": ("tvmdeploy.compile", "tvmdeploy.targets", "tvmdeploy.runtime"),
}


def _our_imports(path: Path) -> list[str]:
    """The tvmdeploy modules `path` imports, at any depth of the file (lazy imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "tvmdeploy"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tvmdeploy":
            assert node.level == 0, f"{path}: use absolute imports"
            found.append(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_every_module_of_a_layer_imports_only_the_layers_below_it(layer):
    modules = sorted((REPO / layer).rglob("*.py"))
    assert modules
    wrong = [
        f"{path.relative_to(REPO)} imports {name}" for path in modules for name in _our_imports(path) if not name.startswith(ALLOWED[layer])
    ]
    assert not wrong, wrong


def test_the_public_api_imports_no_command_line_code():
    wrong = [name for name in _our_imports(REPO / "__init__.py") if name.startswith("tvmdeploy.tools")]
    assert not wrong, wrong
