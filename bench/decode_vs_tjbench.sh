#!/usr/bin/env bash
# Decode + transform throughput against libjpeg-turbo's own benchmark on the same files:
#   bench/decode_vs_tjbench.sh [SAMPLES] [WORKDIR] [SECONDS] [RUNS]
# Generates SAMPLES ImageNet-like JPEGs, packs them, measures tjbench's full-decode
# frames/s on every file (the reference), then `turbopump bench decode` with rrc224,
# center224 and none on 1 and 2 threads, then rrc224 with every DCT scale M/8 allowed and
# at full scale only. Medians of RUNS runs; ratios in the same run.
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

run() { # transform threads [options] -> median images/s
  local t=$1 th=$2
  shift 2
  for _ in $(seq "$runs"); do
    "$tp" bench decode "$work/ds" --samples "$n" --transform "$t" --threads "$th" \
      --seconds "$secs" --json "$@" | sed -n 's/.*"images_per_s": \([0-9.]*\).*/\1/p'
  done | median
}
for t in rrc224 center224 none; do
  one=$(run "$t" 1); two=$(run "$t" 2)
  awk -v t="$t" -v one="$one" -v two="$two" -v tj="$tj" 'BEGIN {
    printf "%-9s 1 thread %7.1f images/s (%.2f x tjbench)   2 threads %7.1f images/s (%.2fx)\n",
           t, one, one / tj, two, two / one }'
done
# The scale set: the default (1/8, 1/4, 1/2, 1) against every M/8, and full scale only.
for opt in "--scales all" "--exact"; do
  v=$(run rrc224 1 $opt)
  awk -v opt="$opt" -v v="$v" -v tj="$tj" 'BEGIN {
    printf "rrc224 %-13s 1 thread %7.1f images/s (%.2f x tjbench)\n", opt, v, v / tj }'
done
