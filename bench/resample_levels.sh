#!/usr/bin/env bash
# The default resampler's SIMD levels against each other in one process (plain C, SSSE3,
# AVX2, AVX-512 without VNNI, and the default: what the CPU has), output bytes checked
# against plain C: bench/resample_levels.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
b=${BUILD:-build}
[ -f "$b/codecs/libtp_codecs.a" ] || scripts/build.sh "$b" >/dev/null
out=$b/resample_levels
cc -O2 -std=c11 -D_GNU_SOURCE -Icodecs -Icommon -Iinclude -I"$b/include" \
   bench/resample_levels.c "$b/codecs/libtp_codecs.a" "$b/common/libtp_common.a" -lm -o "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$out" "${1:-30}"
