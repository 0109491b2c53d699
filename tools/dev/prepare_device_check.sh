#!/usr/bin/env bash
# Build, on this GPU-less host, the kit that tools/dev/device_check.sh runs on a GPU machine:
#   tools/dev/prepare_device_check.sh [KIT_DIR] [--with-onnx] [--batch N ...] [--python X.Y ...]
# (see tools/dev/prepare_device_check.py --help). Takes a few minutes: three MobileNetV2 x1.0 builds.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec "${PYTHON:-$repo/.venv/bin/python}" -m tvmdeploy.tools.dev.prepare_device_check "$@"
