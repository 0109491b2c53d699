#!/usr/bin/env bash
# Device check on a fresh GPU machine (no network, no TVM; Python 3.10-3.13 with numpy, PyTorch, onnxruntime).
# Run from the kit that tools/dev/prepare_device_check.py built:  bash KIT/device_check.sh
# Unpacks the runtime-only bundle, then device_check.py checks CUDA parity and timing against PyTorch and
# ONNX Runtime, and AVX-512 vs ONNX Runtime when the CPU has avx512f. Results: $OUT/device_check.{json,md}.
set -uo pipefail

kit="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-$PWD/device_check_out}"
budget="${DEVICE_CHECK_BUDGET_S:-420}"   # steps stop starting after this; the whole run must fit 8 minutes
python="${PYTHON:-python3}"
mkdir -p "$out"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar xzf "$kit/runtime.tar.gz" -C "$work"
bundle="$work/tvmdeploy-runtime-linux-x86_64"

# The bundle carries tvm_ffi's compiled extension for a fixed set of Pythons; say so plainly if this one is not among them.
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if ! grep -q "\"$pyver\"" "$bundle/BUNDLE.json"; then
  echo "error: the bundle has no tvm_ffi extension for Python $pyver; rebuild the kit with --python $pyver" | tee "$out/device_check.md"
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/nvidia_smi.txt"

# Hard stop a little under 8 minutes, whatever hangs; partial results are saved after every step.
timeout --kill-after=10 "${DEVICE_CHECK_TIMEOUT_S:-460}" \
  "$python" "$kit/device_check.py" --kit "$kit" --bundle-root "$bundle" --out "$out" --budget-s "$budget" "$@" \
  2>&1 | tee "$out/device_check.log"
status=${PIPESTATUS[0]}
rm -rf "$out/work"
exit "$status"
