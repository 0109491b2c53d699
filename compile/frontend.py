"""ONNX front end: validate an image-classification ONNX file and import it into Relax with a fixed input shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tvmdeploy.runtime.artifact import sha256_file
from tvmdeploy.runtime.errors import TvmDeployError

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64"}


@dataclass
class OnnxModelInfo:
    """What we learned from the ONNX file before importing it."""

    path: Path
    sha256: str
    input_name: str
    input_shape: list[int]
    input_dtype: str
    output_name: str
    metadata: dict[str, str] = field(default_factory=dict)
    weights_params: list | None = None  # detached weight tensors, when imported with detach_weights
    fixed_batch: int | None = None  # the batch the file itself fixes (None: dynamic)
    output_dims: list[int | None] = field(default_factory=list)  # first output's static dims (None: dynamic)

    @property
    def model_name(self) -> str:
        return self.metadata.get("tvmdeploy.model", self.path.stem)

    @property
    def weights(self) -> str:
        return self.metadata.get("tvmdeploy.weights", "unknown")

    @property
    def labels(self) -> str:
        return self.metadata.get("tvmdeploy.labels", "imagenet1k")


def load_onnx_proto(path: Path):
    """Parse an ONNX file, with one-line errors for the ways a file can be wrong."""
    import onnx  # lazy: only building and checking need it
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.exists():
        raise TvmDeployError(f"ONNX file not found: {path}")
    if not path.is_file():
        raise TvmDeployError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise TvmDeployError(f"{path} is empty, not an ONNX model")
    try:
        model = onnx.load(str(path))
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError) as exc:
        raise TvmDeployError(f"{path} is not a valid ONNX model (truncated or another format): {type(exc).__name__}") from None
    if not model.graph.node:
        raise TvmDeployError(f"{path} is not a valid ONNX model: the graph has no nodes (truncated or another format)")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "validation failed"
        raise TvmDeployError(f"{path} is not a valid ONNX model: {first}") from None
    return model


def _graph_inputs(model) -> list:
    initializers = {init.name for init in model.graph.initializer}
    return [inp for inp in model.graph.input if inp.name not in initializers]


def inspect_onnx(path: Path, model=None, input_shape: list[int] | None = None, batch: int | None = None) -> OnnxModelInfo:
    """Check the model has one 4-D image input and resolve its static shape."""
    path = Path(path)
    model = model if model is not None else load_onnx_proto(path)
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs) or "none"
        raise TvmDeployError(f"{path}: expected exactly one input (an image batch), found {len(inputs)}: {names}")
    graph_input = inputs[0]
    tensor_type = graph_input.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
    if dtype is None:
        raise TvmDeployError(f"{path}: input '{graph_input.name}' has element type {tensor_type.elem_type}; expected float32")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim]
    if len(dims) != 4:
        raise TvmDeployError(f"{path}: input '{graph_input.name}' is {len(dims)}-D; expected a 4-D NCHW image batch")
    fixed_batch = dims[0]
    if input_shape is not None:
        if len(input_shape) != 4 or any(int(v) <= 0 for v in input_shape):
            raise TvmDeployError(f"--input-shape must be 4 positive integers N,C,H,W, got {input_shape}")
        for axis, (fixed, wanted) in enumerate(zip(dims, input_shape)):
            if fixed is not None and fixed != wanted and not (axis == 0 and batch is None):
                raise TvmDeployError(f"{path}: --input-shape {list(input_shape)} conflicts with the model's fixed dim {axis} = {fixed}")
        dims = [int(v) for v in input_shape]
    if batch is not None:
        if batch < 1:
            raise TvmDeployError(f"batch size must be >= 1, got {batch}")
        dims[0] = batch
    if dims[0] is None:
        dims[0] = 1  # a dynamic batch defaults to 1; the spatial dims must be given explicitly
    if any(d is None for d in dims):
        shown = [d if d is not None else "?" for d in dims]
        raise TvmDeployError(f"{path}: input '{graph_input.name}' has dynamic dims {shown}; pass --input-shape N,C,H,W")
    if len(model.graph.output) < 1:
        raise TvmDeployError(f"{path}: the model has no outputs")
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    return OnnxModelInfo(
        path=path,
        sha256=sha256_file(path),
        input_name=graph_input.name,
        input_shape=dims,
        input_dtype=dtype,
        output_name=model.graph.output[0].name,
        metadata=metadata,
        fixed_batch=fixed_batch,
        output_dims=[
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in model.graph.output[0].type.tensor_type.shape.dim
        ],
    )


def import_onnx(
    path: Path, input_shape: list[int] | None = None, batch: int | None = None, *, detach_weights: bool = False
):
    """(Relax IRModule, OnnxModelInfo) for an image-classification ONNX file.

    Weights are embedded as constants (what the build wants: the library is self-contained and the
    CPU pipeline can fold weight repacking into them); with `detach_weights` they become trailing
    parameters of `main` and `info.weights_params` holds their values, in order.
    """
    from tvmdeploy.compile import tvm_compile_api

    model = load_onnx_proto(path)
    info = inspect_onnx(path, model, input_shape=input_shape, batch=batch)
    supported = tvm_compile_api.supported_onnx_ops()
    if supported:
        missing = sorted({node.op_type for node in model.graph.node if node.domain in ("", "ai.onnx")} - supported)
        if missing:
            raise TvmDeployError(f"{path}: unsupported ONNX operator(s) for TVM Relax: {', '.join(missing)}")
    try:
        mod = tvm_compile_api.relax_from_onnx(
            model, {info.input_name: info.input_shape}, {info.input_name: info.input_dtype},
            weights_as_inputs=detach_weights,
        )
    except tvm_compile_api.OpNotImplemented as exc:
        raise TvmDeployError(f"{path}: unsupported ONNX operator: {str(exc).strip().splitlines()[-1]}") from None
    if detach_weights:
        mod, params = tvm_compile_api.detach_weights(mod)
        info.weights_params = list(params.get("main", []))
    return mod, info


def onnx_with_batch(source: Path, batch: int, dest: Path) -> Path:
    """`source` with its input and output batch dimension set to `batch` (exported zoo models fix it at 1)."""
    import onnx

    model = onnx.load(str(source))
    for value in list(model.graph.input[:1]) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_param")
            dims[0].dim_value = batch
    # Intermediate shapes recorded at the old batch would contradict the new one.
    del model.graph.value_info[:]
    dest.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dest))
    return dest
