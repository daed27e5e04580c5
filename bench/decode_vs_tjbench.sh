#!/usr/bin/env bash
# Decode + transform throughput against libjpeg-turbo's own benchmark on the same files:
#   bench/decode_vs_tjbench.sh [SAMPLES] [WORKDIR] [SECONDS] [RUNS]
# Generates SAMPLES ImageNet-like JPEGs, packs them, measures tjbench's full-decode
# frames/s on every file (the reference), then `turbopump bench decode` with rrc224,
# center224 and none on 1 and 2 threads. Medians of RUNS runs; ratios in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-500}
work=${2:-build/bench-decode}
secs=${3:-5}
runs=${4:-3}
tp=build/tools/turbopump
[ -x "$tp" ] || scripts/build.sh build >/dev/null
command -v tjbench >/dev/null || apt-get install -y -qq libjpeg-turbo-progs >/dev/null
mkdir -p "$work"
if [ ! -f "$work/images.$n" ]; then
  rm -rf "$work/images" "$work"/images.*
  "$tp" gen imagefolder "$work/images" --samples "$n" --classes 10 --seed 1 >/dev/null
  touch "$work/images.$n"
fi
"$tp" pack "$work/images" "$work/ds" --force --quiet

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# tjbench, one file at a time: seconds per image from its megapixels/s, summed.
tj=$(find "$work/images" -name '*.jpg' | sort | while read -r f; do
       tjbench "$f" -rgb -benchtime 0.1 -warmup 0.02 -quiet -nowrite 2>/dev/null | awk 'NF >= 9 && $1 == "RGB" {print $5 * $6 / ($NF * 1e6)}'
     done | awk '{s += $1; k++} END {printf "%.2f", k / s}')
echo "tjbench full decode to RGB, 1 thread: $tj frames/s over $n files"

run() { # transform threads -> median images/s
  for _ in $(seq "$runs"); do
    "$tp" bench decode "$work/ds" --samples "$n" --transform "$1" --threads "$2" \
      --seconds "$secs" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])'
  done | median
}
for t in rrc224 center224 none; do
  one=$(run "$t" 1); two=$(run "$t" 2)
  awk -v t="$t" -v one="$one" -v two="$two" -v tj="$tj" 'BEGIN {
    printf "%-9s 1 thread %7.1f images/s (%.2f x tjbench)   2 threads %7.1f images/s (%.2fx)\n",
           t, one, one / tj, two, two / one }'
done
