"""tvmdeploy runtime: load an artifact locally or over RPC, shared pre/post-processing, timing (no torch, no compiler)."""
