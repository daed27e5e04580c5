#!/usr/bin/env bash
# The IO engine against fio on the same shard files: random whole-record O_DIRECT reads
# at queue depth 64, for 4 KiB and 128 KiB records, 2 GiB of each. fio runs randread
# with ioengine=io_uring, direct=1, the record size as block size and the same iodepth.
# Also the posix backend at queue depth 1. Runs alternate; medians of RUNS runs.
#   bench/io_vs_fio.sh [WORKDIR] [SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/bench-io}
secs=${2:-10}
runs=${3:-3}
tp=build/tools/turbopump
[ -x "$tp" ] || scripts/build.sh build >/dev/null
command -v fio >/dev/null || { apt-get install -y -qq fio >/dev/null || {
  echo "io_vs_fio: fio is missing (apt-get install fio)" >&2; exit 1; }; }
mkdir -p "$work"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(df -h "$work" | awk 'NR==2 {print $1}')"
for bytes in 4096 131072; do
  ds="$work/records-$bytes"
  samples=$(( (2 << 30) / bytes ))
  if [ ! -f "$ds/manifest.json" ]; then
    "$tp" gen tensors "$ds" --samples "$samples" --record-bytes "$bytes" --seed 1 >/dev/null
  fi
  files=$(ls "$ds"/shard-*.tpr | paste -sd:)
  fio_iops=(); fio_p99=(); tp_iops=(); tp_p99=(); px_iops=(); px_p99=()
  for _ in $(seq "$runs"); do
    out=$(fio --name=randread --rw=randread --ioengine=io_uring --direct=1 --bs="$bytes" \
              --iodepth=64 --runtime="$secs" --time_based --filename="$files" \
              --output-format=json 2>/dev/null)
    fio_iops+=("$(echo "$out" | json 'd["jobs"][0]["read"]["iops"]')")
    fio_p99+=("$(echo "$out" | json 'd["jobs"][0]["read"]["clat_ns"]["percentile"]["99.000000"]/1000')")
    out=$("$tp" bench io "$ds" --direct --qd 64 --seconds "$secs" --json)
    tp_iops+=("$(echo "$out" | json 'd["iops"]')")
    tp_p99+=("$(echo "$out" | json 'd["p99_us"]')")
    out=$("$tp" bench io "$ds" --direct --qd 1 --backend posix --seconds "$secs" --json)
    px_iops+=("$(echo "$out" | json 'd["iops"]')")
    px_p99+=("$(echo "$out" | json 'd["p99_us"]')")
  done
  f=$(printf '%s\n' "${fio_iops[@]}" | median); t=$(printf '%s\n' "${tp_iops[@]}" | median)
  p=$(printf '%s\n' "${px_iops[@]}" | median)
  fp=$(printf '%s\n' "${fio_p99[@]}" | median); tpp=$(printf '%s\n' "${tp_p99[@]}" | median)
  pp=$(printf '%s\n' "${px_p99[@]}" | median)
  awk -v b="$bytes" -v f="$f" -v t="$t" -v p="$p" -v fp="$fp" -v tpp="$tpp" -v pp="$pp" \
      -v n="$runs" -v s="$secs" 'BEGIN {
    printf "%d-byte records, 2 GiB, O_DIRECT, medians of %d runs of %d s:\n", b, n, s
    printf "  fio io_uring qd64:         %9.0f IOPS %8.1f MB/s  p99 %7.0f us\n", f, f*b/1e6, fp
    printf "  turbopump io_uring qd64:   %9.0f IOPS %8.1f MB/s  p99 %7.0f us  ratio to fio %.2f\n", t, t*b/1e6, tpp, t/f
    printf "  turbopump posix qd1:       %9.0f IOPS %8.1f MB/s  p99 %7.0f us  io_uring qd64 / posix qd1 %.1fx\n", p, p*b/1e6, pp, t/p
  }'
done
