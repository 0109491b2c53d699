"""INT8: quantization into QDQ (`calibrate`), the integer rewrite the build applies (`integer_ops`), forms and agreement."""

# Operators that make a graph already quantized (QDQ or QOperator form): `quantize` refuses such a model.
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
        "QLinearGlobalAveragePool",
        "QLinearConcat",
    }
)
