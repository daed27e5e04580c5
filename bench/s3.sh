#!/usr/bin/env bash
# The service reading from object storage against the same datasets on local disk, each
# pair measured in the same run: bench/s3.sh [WORKDIR] [RUNS]
# A one-node Ceph RADOS Gateway on loopback (tests/s3/rgw.sh; its OSD keeps objects in
# memory) holds 500 JPEGs cut from real photographs (bench/real_photos.py) and 2,000 raw
# uint8 224x224x3 tensors; one daemon with 2 decode threads serves them from the gateway,
# another from local disk (page cache warm). Prints, medians of RUNS runs:
#  1. rrc224 samples/s and raw GB/s, one consumer, gateway ÷ local;
#  2. GETs in flight against throughput (`bench io` with --qd 1..64 on the raw tensors);
#  3. time to the first batch with a fresh daemon, gateway and local;
#  4. with --cache: the first pass (filling it) and the next (warm) against local disk.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/bench-s3}
runs=${2:-3}
tp=$PWD/${BUILD:-build}/tools/turbopump
[ -x "$tp" ] || scripts/build.sh "${BUILD:-build}" >/dev/null
mkdir -p "$work/root"
work=$(cd "$work" && pwd)
gw=$work/gateway
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  tests/s3/rgw.sh stop "$gw" || true
}
trap cleanup EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
tests/s3/rgw.sh start "$gw" || { echo "no gateway: see above" >&2; exit 1; }
# shellcheck disable=SC1091
. "$gw/env"
bucket=bench
curl -sf -X PUT --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$AWS_ENDPOINT_URL/$bucket" >/dev/null
if [ ! -f "$work/photos.500" ]; then
  scripts/photos.sh build-photos
  /usr/bin/python3 bench/real_photos.py "$work/photos" --samples 500 --source build-photos >/dev/null
  touch "$work/photos.500"
fi
"$tp" pack "$work/photos" "$work/root/photos" --force --quiet
[ -d "$work/root/raw" ] || "$tp" gen tensors "$work/root/raw" --samples 2000 --shape 224x224x3 >/dev/null
"$tp" pack "$work/photos" "s3://$bucket/photos" --force --quiet
"$tp" merge "$work/root/raw" "s3://$bucket/raw" --force --quiet
cat "$work/root"/*/*.tpr >/dev/null # local runs from the page cache

serve() { # NAME ROOT [OPTIONS]: a daemon on NAME.sock
  local name=$1 root=$2
  shift 2
  rm -f "$work/$name.sock"
  "$tp" serve --root "$root" --socket "$work/$name.sock" --threads 2 --quiet "$@" &
  pids+=($!)
  for _ in $(seq 300); do [ -S "$work/$name.sock" ] && return 0; sleep 0.02; done
  echo "daemon $name did not start" >&2
  exit 1
}
consume() { "$tp" consume --no-autostart --socket "$work/$1.sock" --dataset "$2" --json "${@:3}"; }

serve local "$work/root"
serve remote "s3://$bucket"
rm -f "$work"/*.runs
for i in $(seq "$runs"); do
  for w in local remote; do
    consume "$w" photos --epochs 10 --batch-size 50 --seed "$i" | field samples_per_s >>"$work/rrc.$w.runs"
    consume "$w" raw --epochs 3 --batch-size 64 --seed "$i" | field gb_per_s >>"$work/raw.$w.runs"
  done
done
for m in rrc raw; do
  l=$(median <"$work/$m.local.runs"); r=$(median <"$work/$m.remote.runs")
  unit=$([ "$m" = rrc ] && echo "samples/s" || echo "GB/s")
  echo "$m: gateway $r $unit, local disk $l $unit, ratio $(awk -v a="$r" -v b="$l" 'BEGIN {printf "%.2f", a / b}')"
  echo "  runs: gateway $(tr '\n' ' ' <"$work/$m.remote.runs")| local $(tr '\n' ' ' <"$work/$m.local.runs")"
done

echo "GETs in flight (bench io, raw tensors of 150 KB, 5 s each):"
for qd in 1 4 16 64 128; do
  "$tp" bench io "s3://$bucket/raw" --qd "$qd" --seconds 5 --json >"$work/io.json"
  printf '  %3d in flight: %8.1f GETs/s %8.1f MB/s  latency p50 %s us, p99 %s us\n' "$qd" \
    "$(field iops <"$work/io.json")" "$(field mb_per_s <"$work/io.json")" \
    "$(field p50_us <"$work/io.json")" "$(field p99_us <"$work/io.json")"
done

for i in $(seq "$runs"); do
  for w in local remote; do
    kill "${pids[0]}" "${pids[1]}" 2>/dev/null || true
    wait "${pids[0]}" "${pids[1]}" 2>/dev/null || true
    pids=()
    serve local "$work/root"
    serve remote "s3://$bucket"
    consume "$w" photos --batches 1 --batch-size 50 | field first_batch_ms >>"$work/first.$w.runs"
  done
done
echo "first batch, fresh daemon (opens the dataset): gateway $(median <"$work/first.remote.runs") ms, local $(median <"$work/first.local.runs") ms"
echo "  runs: gateway $(tr '\n' ' ' <"$work/first.remote.runs")| local $(tr '\n' ' ' <"$work/first.local.runs")"

rm -rf "$work/cache"
serve cached "s3://$bucket" --cache "$work/cache" --cache-size 1G
for i in $(seq "$runs"); do
  consume cached raw --epochs 1 --batch-size 64 --seed "$i" | field gb_per_s >>"$work/cold.runs"
  consume cached raw --epochs 3 --batch-size 64 --seed "$i" | field gb_per_s >>"$work/warm.runs"
  consume local raw --epochs 3 --batch-size 64 --seed "$i" | field gb_per_s >>"$work/warmlocal.runs"
  consume cached photos --epochs 10 --batch-size 50 --seed "$i" | field samples_per_s >>"$work/warmrrc.runs"
  consume local photos --epochs 10 --batch-size 50 --seed "$i" | field samples_per_s >>"$work/warmrrclocal.runs"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'
  serve cached "s3://$bucket" --cache "$work/cache" --cache-size 1G # cold again
done
c=$(median <"$work/cold.runs"); h=$(median <"$work/warm.runs"); l=$(median <"$work/warmlocal.runs")
echo "raw with --cache: first pass $c GB/s, warm $h GB/s, local disk $l GB/s; warm ÷ local $(awk -v a="$h" -v b="$l" 'BEGIN {printf "%.2f", a / b}')"
echo "  runs: cold $(tr '\n' ' ' <"$work/cold.runs")| warm $(tr '\n' ' ' <"$work/warm.runs")| local $(tr '\n' ' ' <"$work/warmlocal.runs")"
h=$(median <"$work/warmrrc.runs"); l=$(median <"$work/warmrrclocal.runs")
echo "rrc224 with --cache warm: $h samples/s, local disk $l; ratio $(awk -v a="$h" -v b="$l" 'BEGIN {printf "%.2f", a / b}')"
rm -f "$work"/*.runs "$work/io.json"
