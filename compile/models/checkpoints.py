"""Load torchvision/timm (.pth, .safetensors) and PaddleClas (.pdparams) checkpoints into a spec module."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from tvmdeploy.compile.models.mobilenetv2_spec import ArchSpec
from tvmdeploy.runtime.artifact import sha256_file
from tvmdeploy.runtime.errors import TvmDeployError

TORCH_SUFFIXES = (".pth", ".pt", ".bin")
PADDLE_SUFFIX = ".pdparams"
SAFETENSORS_SUFFIX = ".safetensors"

# The only globals a .pdparams pickle may name: numpy's array/dtype/scalar reconstructors,
# `_codecs.encode` (how protocol 2 pickles bytes) and OrderedDict. None of them can run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"
_BN_PADDLE_SUFFIXES = {"scale": "weight", "offset": "bias", "mean": "running_mean", "variance": "running_var"}
_BN_STRUCTURED_SUFFIXES = {"weight": "weight", "bias": "bias", "_mean": "running_mean", "_variance": "running_var"}
_MAX_LISTED = 4


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        # Pickles written under numpy 1 name numpy.core, which numpy 2 only keeps as a deprecated alias.
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def load_pdparams(path: Path) -> dict[str, np.ndarray]:
    """A Paddle `.pdparams` file as a dict of numpy arrays, without ever running pickled code."""
    try:
        with open(path, "rb") as f:
            data = _NumpyOnlyUnpickler(io.BufferedReader(f)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise TvmDeployError(f"{path} is not a plain Paddle .pdparams of numpy arrays: {exc}") from None
    if not isinstance(data, dict):
        raise TvmDeployError(f"{path}: expected a dict of parameters, found {type(data).__name__}")
    data = {k: v for k, v in data.items() if k != _PADDLE_NAME_TABLE}
    bad = [k for k, v in data.items() if not isinstance(v, np.ndarray) or v.dtype.hasobject]
    if bad:
        raise TvmDeployError(f"{path}: entries that are not numpy arrays: {', '.join(map(str, bad[:_MAX_LISTED]))}")
    return data


def paddle_key_map(spec: ArchSpec) -> dict[str, tuple[str, bool]]:
    """Paddle name -> (torch state-dict key, transpose?) for both Paddle parameter and structured names."""
    mapping: dict[str, tuple[str, bool]] = {}
    for c in spec.convs():
        mapping[f"{c.conv}.weight"] = (f"{c.conv}.weight", False)
        for paddle_suffix, torch_suffix in _BN_STRUCTURED_SUFFIXES.items():
            mapping[f"{c.bn}.{paddle_suffix}"] = (f"{c.bn}.{torch_suffix}", False)
        if c.paddle:
            mapping[f"{c.paddle}_weights"] = (f"{c.conv}.weight", False)
            for paddle_suffix, torch_suffix in _BN_PADDLE_SUFFIXES.items():
                mapping[f"{c.paddle}_bn_{paddle_suffix}"] = (f"{c.bn}.{torch_suffix}", False)
    fc = spec.classifier
    # Paddle's Linear stores its weight as [in, out]; torch's as [out, in].
    mapping[f"{fc.key}.weight"] = (f"{fc.key}.weight", True)
    mapping[f"{fc.key}.bias"] = (f"{fc.key}.bias", False)
    if fc.paddle:
        mapping[f"{fc.paddle}_weights"] = (f"{fc.key}.weight", True)
        mapping[f"{fc.paddle}_offset"] = (f"{fc.key}.bias", False)
    return mapping


def _paddle_to_torch_names(arrays: dict[str, np.ndarray], spec: ArchSpec) -> dict[str, np.ndarray]:
    mapping = paddle_key_map(spec)
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        key, transpose = mapping.get(name, (name, False))
        out[key] = array.T if transpose and array.ndim == 2 else array
    return out


def _load_torch_file(path: Path) -> dict[str, Any]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or unsafe files
        raise TvmDeployError(f"cannot load {path} as a torch state dict: {str(exc).splitlines()[0]}") from None
    # Training checkpoints wrap the weights; DataParallel prefixes every key with `module.`.
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict):
        raise TvmDeployError(f"{path}: expected a state dict, found {type(data).__name__}")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in data.items()}


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise TvmDeployError(f"cannot load {path} as safetensors: {exc}") from None


def read_checkpoint(path: Path, spec: ArchSpec) -> dict[str, Any]:
    """The checkpoint's tensors keyed by the spec module's state-dict names (unchecked)."""
    path = Path(path)
    if not path.is_file():
        raise TvmDeployError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == PADDLE_SUFFIX:
        if spec.source != "ppcls":
            raise TvmDeployError(f"{path} is a PaddleClas checkpoint but the model is a {spec.source} one")
        return _paddle_to_torch_names(load_pdparams(path), spec)
    if suffix == SAFETENSORS_SUFFIX:
        return _load_safetensors(path)
    if suffix in TORCH_SUFFIXES:
        return _load_torch_file(path)
    raise TvmDeployError(f"unknown weights format {suffix!r} for {path}; use .pth, .safetensors or .pdparams")


def _listed(items: list[str]) -> str:
    more = f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def load_into(module: Any, path: Path) -> str:
    """Load the checkpoint at `path` into `module` (a SpecMobileNetV2); return the file's sha256."""
    import torch

    spec = module.spec
    state = read_checkpoint(Path(path), spec)
    own = module.state_dict()
    # BN step counters are training bookkeeping: official checkpoints may or may not carry them.
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own and not k.endswith("num_batches_tracked")]
    mismatched = []
    for key, value in state.items():
        if key in own and tuple(value.shape) != tuple(own[key].shape):
            mismatched.append(f"{key}: checkpoint {list(value.shape)} vs model {list(own[key].shape)}")
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_listed(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches ({_listed(mismatched)})")
        raise TvmDeployError(f"checkpoint {path} does not fit {spec.source} MobileNetV2 x{spec.width}: " + "; ".join(parts))
    tensors = {}
    for key, target in own.items():
        value = state.get(key, target)
        value = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
        tensors[key] = value.to(target.dtype)
    module.load_state_dict(tensors, strict=True)
    return sha256_file(Path(path))
