"""Default (untuned) schedules: our CPU rules and TVM's dlight GPU rules, for kernels no tuning log covers."""

# Kernels schedules.fusion merges (an expansion and the depthwise conv reading it) are named with this prefix
# and a counter; reports class them as one block. Here, light, for reports that must not import TVM.
BLOCK_PREFIX = "fused_expand_dw"
BLOCK_CLASS = "expand+depthwise"
