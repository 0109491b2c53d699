"""INT8: static post-training quantization of an ONNX model into the QDQ form the build takes."""

# Operators that make a graph already quantized (QDQ or QOperator form): `quantize` refuses such a model.
QUANTIZED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "QGemm", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearConcat",
})
