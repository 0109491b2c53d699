#!/usr/bin/env bash
# Debian packages tvmdeploy needs beyond Python: the aarch64 cross compiler, qemu-user for the emulated
# board, and Debian's arm64 package lists (the board root is built from arm64 .debs). Idempotent: it
# installs only what is missing and runs apt-get update only when the lists lack something.
set -euo pipefail

PACKAGES=(g++-aarch64-linux-gnu qemu-user-static)
BOARD_ARCH=arm64

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "error: run as root (or install sudo): apt-get and dpkg --add-architecture need it" >&2
    exit 2
fi
export DEBIAN_FRONTEND=noninteractive

need_update=0
if ! dpkg --print-foreign-architectures | grep -qx "$BOARD_ARCH"; then
    echo "adding Debian architecture $BOARD_ARCH (for the emulated board's packages)"
    "${SUDO[@]}" dpkg --add-architecture "$BOARD_ARCH"
    need_update=1
fi
if ! apt-cache show "libc6:$BOARD_ARCH" >/dev/null 2>&1; then
    need_update=1
fi

missing=()
for package in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
        if ! apt-cache show "$package" >/dev/null 2>&1; then
            need_update=1
        fi
    fi
done

if [ "$need_update" -eq 1 ]; then
    "${SUDO[@]}" apt-get update -q
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Fail here, not minutes later in a build, if something is still missing.
for tool in aarch64-linux-gnu-g++ qemu-aarch64-static; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool still not found after install" >&2; exit 1; }
done
apt-cache show "libc6:$BOARD_ARCH" >/dev/null 2>&1 || { echo "error: no $BOARD_ARCH package lists after apt-get update" >&2; exit 1; }
echo "system dependencies ready: ${PACKAGES[*]}, Debian $BOARD_ARCH package lists"
