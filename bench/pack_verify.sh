#!/usr/bin/env bash
# Pack and verify throughput on generated ImageNet-like JPEGs, with `cat` as the reference
# for reading the same shards: bench/pack_verify.sh [SAMPLES] [WORKDIR] [RUNS]
# Prints the median of RUNS runs of each measurement, and ratios measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
work=${2:-build/bench-pack}
runs=${3:-3}
tp=build/tools/turbopump
[ -x "$tp" ] || scripts/build.sh build >/dev/null
mkdir -p "$work"
if [ ! -f "$work/images.$n" ]; then
  rm -rf "$work/images" "$work"/images.*
  "$tp" gen imagefolder "$work/images" --samples "$n" --classes 100 --seed 1
  touch "$work/images.$n"
fi

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
src_mb=$(du -sb "$work/images" | awk '{print $1 / 1e6}')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "input:   $n JPEGs, $src_mb MB"

for jobs in 1 2; do
  times=()
  for _ in $(seq "$runs"); do
    t0=$(now)
    "$tp" pack "$work/images" "$work/ds" --jobs "$jobs" --force --quiet
    times+=("$(calc "$(now) - $t0")")
  done
  t=$(printf '%s\n' "${times[@]}" | median)
  printf 'pack --jobs %d: median %.2f s of %d runs: %.0f samples/s, %.1f MB/s\n' \
    "$jobs" "$t" "$runs" "$(calc "$n / $t")" "$(calc "$src_mb / $t")"
done

# The disk's sequential write speed, fsync included, for as many bytes as the dataset:
# packing cannot beat it.
ds_bytes=$(cat "$work"/ds/shard-*.tpr | wc -c)
dd_t=()
for _ in $(seq "$runs"); do
  t0=$(now)
  dd if=/dev/zero of="$work/dd.tmp" bs=1M count=$((ds_bytes >> 20)) conv=fsync 2>/dev/null
  dd_t+=("$(calc "$(now) - $t0")")
  rm -f "$work/dd.tmp"
done
d=$(printf '%s\n' "${dd_t[@]}" | median)
printf 'dd write + fsync of %.0f MB: %.1f MB/s (median of %d); pack --jobs %d ratio %.2f\n' \
  "$(calc "$ds_bytes / 1e6")" "$(calc "$ds_bytes / 1e6 / $d")" "$runs" "$jobs" \
  "$(calc "$d / $t")"

shards=("$work"/ds/shard-*.tpr)
ds_mb=$(cat "${shards[@]}" | wc -c | awk '{print $1 / 1e6}')    # also warms the page cache
cat_t=(); ver_t=(); ver2_t=()
for _ in $(seq $((runs + 2))); do
  t0=$(now); cat "${shards[@]}" > /dev/null; cat_t+=("$(calc "$(now) - $t0")")
  t0=$(now); "$tp" verify "$work/ds" --jobs 1 > /dev/null; ver_t+=("$(calc "$(now) - $t0")")
  t0=$(now); "$tp" verify "$work/ds" --jobs 2 > /dev/null; ver2_t+=("$(calc "$(now) - $t0")")
done
c=$(printf '%s\n' "${cat_t[@]}" | median)
v=$(printf '%s\n' "${ver_t[@]}" | median)
v2=$(printf '%s\n' "${ver2_t[@]}" | median)
printf 'cat shards > /dev/null: %.0f MB/s (median of %d, %.1f MB, page cache warm)\n' \
  "$(calc "$ds_mb / $c")" $((runs + 2)) "$ds_mb"
printf 'verify --jobs 1:        %.0f MB/s, ratio to cat %.2f\n' \
  "$(calc "$ds_mb / $v")" "$(calc "$c / $v")"
printf 'verify --jobs 2:        %.0f MB/s, ratio to cat %.2f\n' \
  "$(calc "$ds_mb / $v2")" "$(calc "$c / $v2")"
