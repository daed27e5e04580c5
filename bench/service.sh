#!/usr/bin/env bash
# The service's cost and limits, each against a reference measured in the same run:
#   bench/service.sh [--photos] [WORKDIR] [RUNS]
# 1. RandomResizedCrop 224 end to end: two consumers (ranks 0 and 1) reading from one
#    daemon with 2 decode threads, each run paired with a 2 s run of
#    `turbopump bench decode --threads 2` on the same 500 JPEGs (the median of the pairs'
#    ratios is quoted) (what decoding alone achieves on these cores); generated JPEGs, or with
#    --photos JPEGs cut from real photographs (bench/real_photos.py), then also their
#    --jpeg-seek copy against bench decode on that copy. Two rates for the daemon: by the
#    wall clock around both consumers (their start, connection and first batch included),
#    and from each consumer's first batch on (the sum of the two ranks' rates), which
#    leaves out the start-up as bench decode's rate leaves out its own.
# 2. A raw-tensor dataset (uint8 224x224x3) from the page cache: one consumer's GB/s
#    against memcpy's GB/s.
# 3. Four ranks opening at once: when the first and the last get their first batch, with
#    the dataset in the page cache and dropped from it.
# 4. Time to the first batch on a 1,000,000-sample dataset, and the daemon's peak RSS.
# Medians of RUNS runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
photos=0
[ "${1:-}" = --photos ] && { photos=1; shift; }
work=${1:-build/bench-service}
runs=${2:-3}
tp=$PWD/${BUILD:-build}/tools/turbopump
[ -x "$tp" ] || scripts/build.sh "${BUILD:-build}" >/dev/null
mkdir -p "$work/root"
work=$(cd "$work" && pwd)
cc -O2 -o "$work/memcpy" bench/memcpy.c
rm -f "$work"/*.runs
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

[ -f "$work/images.500" ] || { "$tp" gen imagefolder "$work/images" --samples 500 --seed 1 >/dev/null; touch "$work/images.500"; }
if [ "$photos" = 1 ] && [ ! -f "$work/photos.500" ]; then
  scripts/photos.sh build-photos
  /usr/bin/python3 bench/real_photos.py "$work/photos" --samples 500 --source build-photos >/dev/null
  rm -rf "$work/root/photos" "$work/root/photos-seek"
  touch "$work/photos.500"
fi
[ -d "$work/root/jpeg" ] || "$tp" pack "$work/images" "$work/root/jpeg" --quiet
jpegs=(jpeg)
if [ "$photos" = 1 ]; then
  [ -d "$work/root/photos" ] || "$tp" pack "$work/photos" "$work/root/photos" --quiet
  [ -d "$work/root/photos-seek" ] || "$tp" pack "$work/photos" "$work/root/photos-seek" --jpeg-seek --quiet
  jpegs=(photos photos-seek)
fi
[ -d "$work/root/raw" ] || "$tp" gen tensors "$work/root/raw" --samples 2000 --shape 224x224x3 >/dev/null
[ -d "$work/root/million" ] || "$tp" gen tensors "$work/root/million" --samples 1000000 --record-bytes 128 --align 1 >/dev/null

sock=$work/tp.sock
"$tp" serve --root "$work/root" --socket "$sock" --threads 2 --quiet &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

# 1: two ranks, 20 epochs of 250 samples each (10,000 images in all) per run; prints the
# wall-clock rate and the rate from the first batches on
e2e() { # dataset seed
  local t0 t1
  local pids=()
  t0=$(date +%s.%N)
  for r in 0 1; do
    "$tp" consume --socket "$sock" --dataset "$1" --rank $r --world-size 2 --epochs 20 \
      --batch-size 50 --seed "$2" --json >"$work/e2e.$r" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  local steady=0 r
  for r in 0 1; do
    steady=$(awk -v acc="$steady" -v n="$(field samples <"$work/e2e.$r")" \
      -v s="$(field seconds <"$work/e2e.$r")" -v f="$(field first_batch_ms <"$work/e2e.$r")" \
      'BEGIN {print acc + (n - 50) / (s - f / 1000)}')
  done
  awk -v t0="$t0" -v t1="$t1" -v s="$steady" 'BEGIN {printf "%.1f %.1f\n", 10000 / (t1 - t0), s}'
}
for ds in "${jpegs[@]}"; do
  rm -f "$work"/e2e.runs "$work"/steady.runs "$work"/dec.runs "$work"/ratio.runs "$work"/sratio.runs
  for i in $(seq "$runs"); do # each daemon run paired with a bench decode run of about its length
    read -r e st < <(e2e "$ds" "$i")
    d=$("$tp" bench decode "$work/root/$ds" --threads 2 --seconds 2 --json | field images_per_s)
    echo "$e" >>"$work/e2e.runs"; echo "$st" >>"$work/steady.runs"; echo "$d" >>"$work/dec.runs"
    awk -v a="$e" -v b="$d" 'BEGIN {print a / b}' >>"$work/ratio.runs"
    awk -v a="$st" -v b="$d" 'BEGIN {print a / b}' >>"$work/sratio.runs"
  done
  s=$(median <"$work/e2e.runs"); st=$(median <"$work/steady.runs"); d=$(median <"$work/dec.runs")
  echo "rrc224 on $ds, 2 consumers through the daemon: $s samples/s by the wall clock, $st from the first batches on; bench decode 2 threads: $d images/s; median ratios of the pairs $(median <"$work/ratio.runs" | awk '{printf "%.3f", $1}') (wall clock), $(median <"$work/sratio.runs" | awk '{printf "%.3f", $1}') (from the first batches)"
  echo "  runs: daemon $(tr '\n' ' ' <"$work/e2e.runs")| from the first batches $(tr '\n' ' ' <"$work/steady.runs")| bench decode $(tr '\n' ' ' <"$work/dec.runs")"
done

# 2: raw tensors, warm page cache
cat "$work/root/raw"/*.tpr >/dev/null
for i in $(seq "$runs"); do
  "$tp" consume --socket "$sock" --dataset raw --batch-size 64 --epochs 10 --seed "$i" --json | field gb_per_s >>"$work/raw.runs"
  "$work/memcpy" 2 >>"$work/memcpy.runs"
done
g=$(median <"$work/raw.runs"); m=$(median <"$work/memcpy.runs")
echo "raw uint8 224x224x3 from page cache: consumer $g GB/s; memcpy $m GB/s; ratio $(awk -v a="$g" -v b="$m" 'BEGIN {printf "%.2f", a / b}')"
echo "  runs: consumer $(tr '\n' ' ' <"$work/raw.runs")| memcpy $(tr '\n' ' ' <"$work/memcpy.runs")"

# 3: four ranks opening together on the last JPEG dataset of part 1 (batches of 50): when
# the last of them gets its first batch, which a job's first step waits for
last=${jpegs[${#jpegs[@]}-1]}
evict() { # drops the dataset's shards from the page cache: every read then goes to the engine
  /usr/bin/python3 -c 'import os, sys
for f in sys.argv[1:]:
    fd = os.open(f, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' \
    "$work/root/$last"/*.tpr
}
for i in $(seq "$runs"); do
 for cold in 0 1; do
  [ "$cold" = 1 ] && evict
  pids=()
  for r in 0 1 2 3; do
    "$tp" consume --socket "$sock" --dataset "$last" --rank $r --world-size 4 --epochs 4 \
      --batch-size 50 --seed "$i" --json >"$work/e2e.$r" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for r in 0 1 2 3; do field first_batch_ms <"$work/e2e.$r"; done | sort -g >"$work/ranks"
  head -n 1 "$work/ranks" >>"$work/firstrank.$cold.runs"
  tail -n 1 "$work/ranks" >>"$work/lastrank.$cold.runs"
 done
done
for cold in 0 1; do
  [ "$cold" = 1 ] && what="its shards dropped from the page cache" || what="in the page cache"
  echo "4 ranks opening together on $last, $what: the last first batch after $(median <"$work/lastrank.$cold.runs") ms, the first after $(median <"$work/firstrank.$cold.runs") ms"
  echo "  runs: last $(tr '\n' ' ' <"$work/lastrank.$cold.runs")| first $(tr '\n' ' ' <"$work/firstrank.$cold.runs")"
done

# 4: first batch on 1,000,000 samples (the dataset opened by the daemon for each run's
# first session: restart the daemon between runs)
for i in $(seq "$runs"); do
  kill $daemon; wait $daemon || true
  "$tp" serve --root "$work/root" --socket "$sock" --threads 2 --quiet &
  daemon=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  "$tp" consume --socket "$sock" --dataset million --batch-size 256 --batches 20 --json | field first_batch_ms >>"$work/first.runs"
  grep VmHWM /proc/$daemon/status | awk '{print $2 / 1024}' >>"$work/rss.runs"
done
echo "1,000,000 samples: first batch after $(median <"$work/first.runs") ms; daemon peak RSS $(median <"$work/rss.runs") MiB"
echo "  runs: first batch $(tr '\n' ' ' <"$work/first.runs")| RSS $(tr '\n' ' ' <"$work/rss.runs")"
rm -f "$work"/*.runs "$work"/e2e.[0-3] "$work"/ranks
