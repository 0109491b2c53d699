#!/usr/bin/env bash
# The main job on an embedded default: export MobileNetV2, build it for this host, classify the
# bundled sample image, and time it against ONNX Runtime on the same threads.
set -euo pipefail
cd "$(dirname "$0")/.."
TD=.venv/bin/tvmdeploy
OUT=${OUT:-out/demo}
MODEL=${MODEL:-torchvision_mobilenet_v2}
if [ -z "${PROFILE:-}" ]; then
    # The fastest profile with a shipped tuning log that this CPU can run.
    if $TD targets | grep -qE '^x86-avx512 +cpu +x86_64 +yes'; then PROFILE=x86-avx512; else PROFILE=x86-avx2; fi
fi
mkdir -p "$OUT"

echo "== model zoo"
$TD zoo
echo
echo "== export $MODEL to ONNX (random weights: no checkpoint may be downloaded here; pass --weights FILE for real ones)"
$TD export "$MODEL" -o "$OUT/$MODEL.onnx"
echo
echo "== build for $PROFILE (the shipped tuning log if tuned on this CPU kind, else the default schedules), verified against ONNX Runtime"
$TD build "$OUT/$MODEL.onnx" --profile "$PROFILE" -o "$OUT/$MODEL-$PROFILE"
echo
echo "== classify the bundled sample image"
$TD run "$OUT/$MODEL-$PROFILE" tools/assets/cat.jpg
echo
echo "== latency vs ONNX Runtime (same process, same threads, alternating blocks of runs)"
$TD bench "$OUT/$MODEL-$PROFILE" --threads 2
