"""Default (untuned) CPU schedules, our rules, for the kernels no tuning log covers (GPU: backends/gpu_schedule)."""

# Kernels schedules.fusion merges (an expansion, the depthwise conv reading it, maybe the projection after) are
# named with this prefix and a counter; reports class them as one block. Here, light, for reports without TVM.
BLOCK_PREFIX = "fused_block"
BLOCK_CLASS = "block"

# The attribute a scheduled TIR kernel carries (a database record applied, or a default rule).
SCHEDULED_ATTR = "tirx.is_scheduled"


def is_scheduled(func) -> bool:
    """Whether a TIR kernel carries a schedule; TVM's raw lowering takes the others."""
    attrs = getattr(func, "attrs", None)
    return attrs is not None and SCHEDULED_ATTR in attrs and bool(attrs[SCHEDULED_ATTR])


# Why a kernel keeps TVM's raw lowering (schedules.apply; the manifest names each such kernel with one of these).
NO_RULE = "no rule matched"
RULE_FAILED = "rule failed"
