#!/usr/bin/env bash
# Decode + transform throughput against libjpeg-turbo's own benchmark on the same files:
#   bench/decode_vs_tjbench.sh [--photos] [SAMPLES] [WORKDIR] [SECONDS] [RUNS]
# Makes SAMPLES ImageNet-like JPEGs (generated, or with --photos cut from real photographs:
# bench/real_photos.py on scripts/photos.sh's set, 500x375, quality 90), packs them as
# they are and with --jpeg-seek, measures tjbench's full-decode frames/s on every file
# (the reference), then `turbopump bench decode` with rrc224, center224 and none on 1 and
# 2 threads, rrc224 with every DCT scale M/8 allowed and at full scale only, and rrc224 on
# the seekable copy (and on it with the seekable path off), and on a copy with wider
# column groups (--jpeg-seek=4). Then the same 1-thread rrc224 rows paired with
# TurboJPEG's full decode of the files in alternating rounds in one process
# (bench decode --versus-tjbench), which a machine whose speed drifts between the rows
# cannot skew: the ratios to quote. Prints the stored size of the
# seekable copy against the files, and against a lossless Huffman optimisation alone
# (jpegtran -optimize), which is what the restart markers cost. Medians of RUNS runs;
# ratios in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
photos=0
[ "${1:-}" = --photos ] && { photos=1; shift; }
n=${1:-500}
work=${2:-build/bench-decode}
secs=${3:-5}
runs=${4:-3}
tp=${BUILD:-build}/tools/turbopump
[ -x "$tp" ] || scripts/build.sh "${BUILD:-build}" >/dev/null
command -v tjbench >/dev/null || apt-get install -y -qq libjpeg-turbo-progs >/dev/null
mkdir -p "$work"
kind=$([ "$photos" = 1 ] && echo photos || echo images)
if [ ! -f "$work/$kind.$n" ]; then
  rm -rf "$work/$kind" "$work/$kind".*
  if [ "$photos" = 1 ]; then
    scripts/photos.sh build-photos
    /usr/bin/python3 bench/real_photos.py "$work/$kind" --samples "$n" --source build-photos
  else
    "$tp" gen imagefolder "$work/$kind" --samples "$n" --classes 10 --seed 1 >/dev/null
  fi
  touch "$work/$kind.$n"
fi
"$tp" pack "$work/$kind" "$work/ds" --force --quiet
"$tp" pack "$work/$kind" "$work/ds-seek" --force --jpeg-seek | sed -n 's/^jpeg-seek: /seekable copy: /p'
"$tp" pack "$work/$kind" "$work/ds-seek4" --force --jpeg-seek=4 | sed -n 's/^jpeg-seek: /seekable copy, --jpeg-seek=4: /p'

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
files=$(find "$work/$kind" -name '*.jpg' | sort)
bytes() { xargs cat | wc -c; }
orig=$(echo "$files" | bytes)
opt=$(echo "$files" | while read -r f; do jpegtran -optimize -copy all "$f"; done | wc -c)
seek=$(du -b --apparent-size "$work"/ds-seek/*.tpr | awk '{s += $1} END {print s}')
plain=$(du -b --apparent-size "$work"/ds/*.tpr | awk '{s += $1} END {print s}')
awk -v o="$orig" -v p="$opt" -v s="$seek" -v d="$plain" 'BEGIN {
  printf "stored size: files %.2f MB; jpegtran -optimize %.4f of that; shards %.4f with --jpeg-seek ", o / 1e6, p / o, s / d
  printf "(restart markers %.4f of the optimised size)\n", (s - d + o) / p }'

# tjbench, one file at a time: seconds per image from its megapixels/s, summed.
tj=$(echo "$files" | while read -r f; do
       tjbench "$f" -rgb -benchtime 0.1 -warmup 0.02 -quiet -nowrite 2>/dev/null | awk 'NF >= 9 && $1 == "RGB" {print $5 * $6 / ($NF * 1e6)}'
     done | awk '{s += $1; k++} END {printf "%.2f", k / s}')
echo "tjbench full decode to RGB, 1 thread: $tj frames/s over $n files"

run() { # dataset transform threads [options] -> median images/s
  local ds=$1 t=$2 th=$3
  shift 3
  for _ in $(seq "$runs"); do
    "$tp" bench decode "$work/$ds" --samples "$n" --transform "$t" --threads "$th" \
      --seconds "$secs" --json "$@" | sed -n 's/.*"images_per_s": \([0-9.]*\).*/\1/p'
  done | median
}
row() { # label one-thread two-thread
  awk -v l="$1" -v one="$2" -v two="$3" -v tj="$tj" 'BEGIN {
    printf "%-24s 1 thread %7.1f images/s (%.2f x tjbench)", l, one, one / tj
    if (two != "") printf "   2 threads %7.1f images/s (%.2fx)", two, two / one
    printf "\n" }'
}
for t in rrc224 center224 none; do
  row "$t" "$(run ds "$t" 1)" "$(run ds "$t" 2)"
done
# The scale set: the default (1/8, 1/4, 1/2, 1) against every M/8, and full scale only.
row "rrc224 --scales all" "$(run ds rrc224 1 --scales all)" ""
row "rrc224 --exact" "$(run ds rrc224 1 --exact)" ""
# The seekable copy: the crop's segments only; the same bytes decoded the usual way.
row "rrc224 --jpeg-seek" "$(run ds-seek rrc224 1)" "$(run ds-seek rrc224 2)"
row "rrc224 --jpeg-seek --exact" "$(run ds-seek rrc224 1 --exact)" ""
row "center224 --jpeg-seek" "$(run ds-seek center224 1)" ""
row "rrc224 seekable, --no-seek" "$(run ds-seek rrc224 1 --no-seek)" ""
row "rrc224 --jpeg-seek=4" "$(run ds-seek4 rrc224 1)" ""

paired() { # dataset [options] -> median over RUNS runs of the paired ratio
  local ds=$1
  shift
  for _ in $(seq "$runs"); do
    "$tp" bench decode "$work/$ds" --samples "$n" --transform rrc224 --seconds $((secs * 3)) \
      --versus-tjbench="$work/ds" --json "$@" | sed -n 's/.*"ratio": \([0-9.]*\).*/\1/p'
  done | median
}
echo "paired with TurboJPEG's full decode of the files, rounds of 0.25 s, 1 thread (median of $runs runs):"
for spec in "files as they are:ds" "--jpeg-seek:ds-seek" "--jpeg-seek, --no-seek:ds-seek --no-seek" \
            "--jpeg-seek=4:ds-seek4"; do
  # shellcheck disable=SC2086
  printf "  rrc224 %-24s %.3f x TurboJPEG\n" "${spec%%:*}" "$(paired ${spec#*:})"
done
