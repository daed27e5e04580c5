#!/usr/bin/env bash
# Builds bench/resample_vs_swscale.c against the project's codecs library and libswscale
# (installed if missing) and runs it three times: bench/resample_vs_swscale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
b=${BUILD:-build}
[ -f "$b/codecs/libtp_codecs.a" ] || scripts/build.sh "$b" >/dev/null
pkg-config --exists libswscale || apt-get install -y -qq libswscale-dev >/dev/null
out=$b/resample_vs_swscale
cc -O2 -std=c11 -D_GNU_SOURCE -Icodecs -Icommon -Iinclude -I"$b/include" \
   bench/resample_vs_swscale.c "$b/codecs/libtp_codecs.a" "$b/common/libtp_common.a" \
   $(pkg-config --cflags --libs libswscale libavutil) -lm -o "$out"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for run in 1 2 3; do echo "run $run"; "$out"; done
