"""Measurement: parity with ONNX Runtime, reference runtimes, latency comparison across targets, accuracy, per-kernel breakdown."""
