#!/usr/bin/env bash
# Configures and builds turbopump: scripts/build.sh BUILD_DIR [CMAKE_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: build.sh BUILD_DIR [CMAKE_ARGS...]}; shift
cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)"
