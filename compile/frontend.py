"""ONNX front end: validate an image-classification ONNX file and import it into Relax with a fixed input shape.

Real-world exports compute shapes at run time (the TorchScript exporter's "same" padding is
Shape -> Gather -> arithmetic -> Pad; dynamo exports keep symbolic H/W), which TVM's Relax importer
cannot take. `import_onnx` therefore binds the input shape and, when the graph has such subgraphs,
folds them into constants with ONNX Runtime before importing (see `fold_shapes`). The user's file is
never changed: the build keeps the original as the artifact's model.onnx and checks parity against it.
Every failure here is one TvmDeployError line: `cannot import M.onnx: node 'NAME' (OpType): reason`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tvmdeploy.compile.quantization.forms import check_onnx_quantization
from tvmdeploy.runtime.artifact import sha256_file
from tvmdeploy.runtime.errors import TvmDeployError, arg
from tvmdeploy.runtime.labels import INDEX_LABELS

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64"}
_STANDARD_DOMAINS = ("", "ai.onnx")
# Older files are upgraded to this opset with onnx's version converter: the Relax converters are
# written against opset 13+ schemas and silently use their oldest one for older files.
MIN_OPSET = 13
# Inputs that must be constants for a static build: (op type) -> (input index, what it is).
SHAPE_INPUTS: dict[str, tuple[tuple[int, str], ...]] = {
    "Pad": ((1, "pads"), (2, "constant_value"), (3, "axes")),
    "Reshape": ((1, "shape"),),
    "Resize": ((1, "roi"), (2, "scales"), (3, "sizes")),
    "Upsample": ((1, "scales"),),
    "Slice": ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")),
    "Expand": ((1, "shape"),),
    "Tile": ((1, "repeats"),),
    "ConstantOfShape": ((0, "shape"),),
    "Range": ((0, "start"), (1, "limit"), (2, "delta")),
    "Squeeze": ((1, "axes"),),
    "Unsqueeze": ((1, "axes"),),
    "Split": ((1, "split"),),
    "TopK": ((1, "k"),),
    "ReduceMean": ((1, "axes"),),
    "ReduceSum": ((1, "axes"),),
    "ReduceMax": ((1, "axes"),),
    "ReduceMin": ((1, "axes"),),
    "ReduceProd": ((1, "axes"),),
}
_SHAPE_OPS = ("Shape", "Size")  # read a tensor's shape: foldable once the input shape is bound

logger = logging.getLogger(__name__)


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
        """The label set id: the file's own (our exports say), else ImageNet for 1000 classes, else class indices."""
        if "tvmdeploy.labels" in self.metadata:
            return self.metadata["tvmdeploy.labels"]
        classes = self.output_dims[-1] if self.output_dims else None
        return "imagenet1k" if classes == 1000 else INDEX_LABELS


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
            raise TvmDeployError(f"{arg('input_shape')} must be 4 positive integers N,C,H,W, got {input_shape}", param="input_shape")
        for axis, (fixed, wanted) in enumerate(zip(dims, input_shape)):
            if fixed is not None and fixed != wanted and not (axis == 0 and batch is None):
                raise TvmDeployError(
                    f"{path}: {arg('input_shape')} {list(input_shape)} conflicts with the model's fixed dim " f"{axis} = {fixed}",
                    param="input_shape",
                )
        dims = [int(v) for v in input_shape]
    if batch is not None:
        if batch < 1:
            raise TvmDeployError(f"batch size must be >= 1, got {batch}")
        dims[0] = batch
    if dims[0] is None:
        dims[0] = 1  # a dynamic batch defaults to 1; the spatial dims must be given explicitly
    if any(d is None for d in dims):
        shown = [d if d is not None else "?" for d in dims]
        wanted = ",".join(str(d) if d is not None else "NCHW"[axis] for axis, d in enumerate(dims))
        raise TvmDeployError(
            f"cannot import {path}: input '{graph_input.name}' has dynamic dims {shown}; "
            f"pass {arg('input_shape')} {wanted} (e.g. {wanted.replace('H', '224').replace('W', '224')})",
            param="input_shape",
        )
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
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in model.graph.output[0].type.tensor_type.shape.dim
        ],
    )


def import_onnx(path: Path, input_shape: list[int] | None = None, batch: int | None = None, *, detach_weights: bool = False):
    """(Relax IRModule, OnnxModelInfo) for an image-classification ONNX file.

    Shape computations are folded first when the graph has any (`fold_shapes`); the file itself is
    not changed. Weights are embedded as constants (what the build wants: the library is
    self-contained and the CPU pipeline can fold weight repacking into them); with `detach_weights`
    they become trailing parameters of `main` and `info.weights_params` holds their values, in order.
    """
    from tvmdeploy.compile import tvm_compile_api

    path = Path(path)
    model = load_onnx_proto(path)
    info = inspect_onnx(path, model, input_shape=input_shape, batch=batch)
    check_domains(model, path)
    check_onnx_quantization(model, path)
    model = upgrade_opset(model, path)
    computed = computed_shape_inputs(model)
    if computed:
        node, what, _ = computed[0]
        logger.info(
            "%s: folding shape computations (e.g. the %s of node '%s' (%s)) with ONNX Runtime for input %s",
            path,
            what,
            _node_name(node),
            node.op_type,
            info.input_shape,
        )
        model = fold_shapes(model, path, info.input_name, info.input_shape)
        if not any(d for d in info.output_dims[1:]):
            info.output_dims = _static_dims(model.graph.output[0])
    check_supported_ops(model, path)
    still_computed = {(n.name, n.op_type): (what, name) for n, what, name in computed_shape_inputs(model)}
    try:
        mod = tvm_compile_api.relax_from_onnx(
            model,
            {info.input_name: info.input_shape},
            {info.input_name: info.input_dtype},
            weights_as_inputs=detach_weights,
        )
    except Exception as exc:  # noqa: BLE001 - any importer failure is a property of the file: one line, never a traceback
        logger.debug("Relax ONNX importer failed on %s", path, exc_info=True)
        node = tvm_compile_api.failing_onnx_node(exc)
        reason = tvm_compile_api.error_text(exc)
        if node is None:
            raise TvmDeployError(f"cannot import {path}: TVM's Relax ONNX importer failed: {reason}") from None
        if (node.name, node.op_type) in still_computed:
            what, name = still_computed[node.name, node.op_type]
            reason = (
                f"its {what} ('{name}') is computed at run time even with input '{info.input_name}' bound to "
                f"{info.input_shape}: a dynamic shape a static build cannot take (TVM: {reason})"
            )
        raise _node_error(path, node, reason) from None
    if detach_weights:
        mod, params = tvm_compile_api.detach_weights(mod)
        info.weights_params = list(params.get("main", []))
    return mod, info


def _node_name(node) -> str:
    return node.name or (node.output[0] if node.output else "?")


def _node_error(path: Path, node, reason: str) -> TvmDeployError:
    return TvmDeployError(f"cannot import {path}: node '{_node_name(node)}' ({node.op_type}): {reason}")


def _static_dims(value_info) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in value_info.type.tensor_type.shape.dim]


def default_opset(model) -> int:
    """The model's opset of the standard ONNX domain (1 when it names none, as the ONNX spec says)."""
    return next((o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS), 1)


def check_domains(model, path: Path) -> None:
    """Refuse operators of custom domains (com.microsoft, a vendor's...): TVM converts standard ONNX only."""
    for node in model.graph.node:
        if node.domain not in _STANDARD_DOMAINS:
            raise _node_error(
                path,
                node,
                f"custom operator domain '{node.domain}'; only standard ONNX operators can be "
                "imported (export without vendor extensions)",
            )


def upgrade_opset(model, path: Path):
    """The model itself when its opset is in MIN_OPSET..newest known to onnx; older files are upgraded.

    onnx's own version converter does the upgrade (the Relax converters target opset 13+ schemas);
    parity against the original file still decides whether the build is right.
    """
    import onnx
    from onnx import version_converter

    opset = default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    first = model.graph.node[0]
    if opset > newest:
        raise _node_error(
            path,
            first,
            f"ONNX opset {opset} is newer than this installation knows (onnx "
            f"{onnx.__version__}: up to {newest}); re-export at opset {MIN_OPSET}..{newest}",
        )
    if opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # noqa: BLE001 - the converter raises bare RuntimeErrors naming the op
        text = " ".join(str(exc).split()) or type(exc).__name__
        culprit = next((n for n in model.graph.node if n.op_type and f" {n.op_type}" in f" {text}"), first)
        raise _node_error(
            path,
            culprit,
            f"ONNX opset {opset} is not supported (needs {MIN_OPSET}..{newest}) and "
            f"onnx's version converter could not upgrade it: {text[:200]}",
        ) from None
    logger.info("%s: upgraded from ONNX opset %d to %d with onnx.version_converter", path, opset, MIN_OPSET)
    return upgraded


def check_supported_ops(model, path: Path) -> None:
    """Every standard operator has a Relax converter (checked before importing, for a one-line error)."""
    from tvmdeploy.compile import tvm_compile_api

    supported = tvm_compile_api.supported_onnx_ops()
    if not supported:
        return
    missing = [node for node in model.graph.node if node.domain in _STANDARD_DOMAINS and node.op_type not in supported]
    if missing:
        others = sorted({n.op_type for n in missing} - {missing[0].op_type})
        more = f" (also unsupported: {', '.join(others)})" if others else ""
        raise _node_error(path, missing[0], f"unsupported ONNX operator for TVM Relax{more}")


def computed_shape_inputs(model) -> list[tuple]:
    """(node, what, input name) for every shape-like input that is computed rather than a constant.

    A Shape/Size node counts too (its output is computed from a shape). Empty: nothing to fold.
    """
    constants = {init.name for init in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    found = []
    for node in model.graph.node:
        if node.op_type in _SHAPE_OPS:
            found.append((node, "shape read", node.input[0]))
            continue
        for index, what in SHAPE_INPUTS.get(node.op_type, ()):
            if index < len(node.input) and node.input[index] and node.input[index] not in constants:
                found.append((node, what, node.input[index]))
    return found


def fold_shapes(model, path: Path, input_name: str, input_shape: list[int]):
    """`model` with its input bound to `input_shape` and every shape-only subgraph folded into constants.

    Done by ONNX Runtime's basic graph optimizer writing its optimized model
    (graph_optimization_level=ORT_ENABLE_BASIC + optimized_model_filepath): constant folding
    (Shape included, once shapes are static), redundant-node removal and standard-op fusions only,
    so the result is still plain ONNX. Chosen over onnxscript's optimizer and onnx-simplifier
    because ONNX Runtime is already a core dependency (the parity reference), so the folding is done
    by the very runtime whose results the build is checked against, and needs nothing new to install;
    onnxscript is only in the [export] extra.
    """
    import onnx
    import onnxruntime as ort

    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    graph_input = next(i for i in bound.graph.input if i.name == input_name)
    for dim, value in zip(graph_input.type.tensor_type.shape.dim, input_shape):
        dim.Clear()
        dim.dim_value = int(value)
    del bound.graph.value_info[:]  # intermediate shapes recorded with symbolic dims would contradict the binding
    with tempfile.TemporaryDirectory(prefix="tvmdeploy-fold-") as tmp:
        folded_path = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded_path)
        options.log_severity_level = 3  # ORT's warnings (unused initializers...) are not the user's problem
        try:
            ort.InferenceSession(bound.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad graphs
            text = " ".join(str(exc).split())
            culprit = next((n for n in bound.graph.node if n.name and f"'{n.name}'" in text), None)
            reason = f"ONNX Runtime cannot load it with input '{input_name}' bound to {list(input_shape)}: {text[:300]}"
            if culprit is not None:
                raise _node_error(path, culprit, reason) from None
            raise TvmDeployError(f"cannot import {path}: {reason}") from None
        folded = onnx.load(str(folded_path))
    # ORT lists its own operator domains in opset_import; the graph uses none of them at this level.
    used = {node.domain for node in folded.graph.node}
    keep = [o for o in folded.opset_import if o.domain in _STANDARD_DOMAINS or o.domain in used]
    del folded.opset_import[:]
    folded.opset_import.extend(keep)
    return folded


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
