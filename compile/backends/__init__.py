"""Target back ends: cross-compilation and export for ARM, the CUDA toolchain, GPU schedules."""
