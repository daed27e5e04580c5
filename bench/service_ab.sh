#!/usr/bin/env bash
# Two builds' daemons side by side, for a change too small for separate runs to show:
#   bench/service_ab.sh A B DATASET [RUNS] [ROOT]
# A and B are turbopump executables. Both daemons serve ROOT (default
# build/bench-service/root, as bench/service.sh --photos makes it) with 2 decode threads
# and stay up; each run reads DATASET through A and through B in turn (the order
# alternating), two consumers of 10,000 images as in bench/service.sh part 1, and prints
# both rates by the wall clock, the machine's CPU per 1,000 images during each, and B's
# ratios to A. The last line gives the medians of the ratios. B's `consume` reads from
# both daemons, so the builds must speak the same protocol version.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") ds=$3 runs=${4:-10} root=${5:-build/bench-service/root}
[ -x "$a" ] && [ -x "$b" ] || { echo "service_ab.sh: $1 and $2 must be executables" >&2; exit 2; }
[ -d "$root/$ds" ] || { echo "service_ab.sh: no dataset $root/$ds" >&2; exit 2; }
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
for x in a b; do
  "${!x}" serve --root "$root" --socket "$work/$x.sock" --threads 2 --quiet &
  pids+=($!)
done
for _ in $(seq 100); do [ -S "$work/a.sock" ] && [ -S "$work/b.sock" ] && break; sleep 0.05; done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # in USER_HZ ticks
hz=$(getconf CLK_TCK)
# run X SEED: prints "images/s CPU-ms-per-1000-images" for one run through daemon X
run() {
  local t0 t1 c0 c1 r cons=()
  c0=$(busy); t0=$(date +%s.%N)
  for r in 0 1; do
    "$b" consume --socket "$work/$1.sock" --dataset "$ds" --rank $r --world-size 2 \
      --epochs 20 --batch-size 50 --seed "$2" >/dev/null &
    cons+=($!)
  done
  wait "${cons[@]}"
  t1=$(date +%s.%N); c1=$(busy)
  awk -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v n="$n" -v hz="$hz" \
    'BEGIN {printf "%.1f %.1f\n", n / (t1 - t0), (c1 - c0) * 1000 / hz * 1000 / n}'
}
# the images a run reads: 20 epochs of the dataset, split over the two ranks
n=$(( $("$b" consume --socket "$work/a.sock" --dataset "$ds" --batch-size 50 --epochs 1 --json |
  sed -n 's/.*"samples": \([0-9]*\).*/\1/p') * 20 ))
run a 0 >/dev/null; run b 0 >/dev/null # warm: page cache, rings
: >"$work/rate"; : >"$work/cpu"
for i in $(seq "$runs"); do
  if [ $((i % 2)) = 1 ]; then read -r ra ca < <(run a "$i"); read -r rb cb < <(run b "$i")
  else read -r rb cb < <(run b "$i"); read -r ra ca < <(run a "$i"); fi
  awk -v ra="$ra" -v rb="$rb" -v ca="$ca" -v cb="$cb" 'BEGIN {
    printf "A %.1f images/s %.1f ms CPU/1000 | B %.1f images/s %.1f ms CPU/1000 | B/A rate %.3f CPU %.3f\n",
      ra, ca, rb, cb, rb / ra, cb / ca }'
  awk -v a="$ra" -v b="$rb" 'BEGIN {print b / a}' >>"$work/rate"
  awk -v a="$ca" -v b="$cb" 'BEGIN {print b / a}' >>"$work/cpu"
done
echo "$ds, $runs pairs: median B/A rate $(median <"$work/rate" | awk '{printf "%.3f", $1}'), CPU per image $(median <"$work/cpu" | awk '{printf "%.3f", $1}')"
