"""Shared fixture: `exported_onnx(name)`, a zoo model exported with random seed 0, cached across sessions."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

_REPO = Path(__file__).resolve().parents[1]
# What the exported bytes depend on: the zoo/export sources and the exporter's versions.
_KEY_SOURCES = ("compile/mobilenetv2_spec.py", "compile/torch_models.py", "compile/export.py", "compile/zoo.py")
_KEY_PACKAGES = ("torch", "onnx")
_SEED = 0


def _cache_key() -> str:
    digest = hashlib.sha256()
    for rel in _KEY_SOURCES:
        digest.update(rel.encode() + b"\0" + (_REPO / rel).read_bytes())
    for package in _KEY_PACKAGES:
        try:
            digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package}=absent".encode())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def exported_onnx(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Callable[[str], Path]:
    """Factory: exported_onnx(zoo_name) -> path of that model's ONNX export (random weights, seed 0).

    Each test session gets its own copy; the disk cache under .pytest_cache/tvmdeploy-onnx/<key>/
    survives sessions and is invalidated when the zoo sources or torch/onnx versions change.
    """
    session_dir = tmp_path_factory.mktemp("exported_onnx")
    cache_root = Path(pytestconfig.rootpath) / ".pytest_cache" / "tvmdeploy-onnx"
    cache_dir = cache_root / _cache_key()
    done: dict[str, Path] = {}

    def export(name: str) -> Path:
        if name in done:
            return done[name]
        target = session_dir / f"{name}.onnx"
        cached = cache_dir / f"{name}.onnx"
        if cached.is_file():
            shutil.copyfile(cached, target)
        else:
            pytest.importorskip("torch", reason="exporting a zoo model needs torch (the [export] extra)")
            from tvmdeploy.compile.export import export_onnx

            export_onnx(name, target, seed=_SEED)
            _store(target, cache_root, cache_dir, cached)
        done[name] = target
        return target

    return export


def _store(source: Path, cache_root: Path, cache_dir: Path, cached: Path) -> None:
    """Copy into the cache atomically (parallel sessions may race) and drop stale keys' folders."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f"{cached.name}.{os.getpid()}.part")
        shutil.copyfile(source, partial)
        os.replace(partial, cached)
        for old in cache_root.iterdir():
            if old.is_dir() and old != cache_dir:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # a read-only checkout only loses the cross-session cache
