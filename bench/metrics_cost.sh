#!/usr/bin/env bash
# What serving metrics costs a consumer:
#   bench/metrics_cost.sh [WORKDIR] [ROUNDS] [SCRAPE_INTERVAL_S]
# One daemon (2 decode threads) with --metrics on loopback; one consumer reads a raw
# uint8 224x224x3 dataset from the page cache, ROUNDS times (default 7) without anyone
# scraping and ROUNDS times with a scraper fetching /metrics every SCRAPE_INTERVAL_S
# seconds (default 1), the two alternating so that drift in the machine hits both alike.
# Prints each mode's median samples/s and their ratio (scraped / not scraped).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/bench-metrics}
rounds=${2:-7}
every=${3:-1}
tp=$PWD/build/tools/turbopump
[ -x "$tp" ] || scripts/build.sh build >/dev/null
mkdir -p "$work/root"
work=$(cd "$work" && pwd)
rm -f "$work"/*.runs
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.]*\\).*/\\1/p"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

[ -d "$work/root/raw" ] || "$tp" gen tensors "$work/root/raw" --samples 2000 --shape 224x224x3 >/dev/null
cat "$work/root/raw"/*.tpr >/dev/null

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$work/tp.sock
"$tp" serve --root "$work/root" --socket "$sock" --threads 2 --quiet \
  --metrics "127.0.0.1:$port" &
daemon=$!
scraper=
trap 'kill $daemon ${scraper:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/metrics" && break; sleep 0.05; done
curl -sf -o "$work/scrape.txt" "http://127.0.0.1:$port/metrics"
echo "one scrape: $(wc -c <"$work/scrape.txt") bytes, $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/metrics") s"

run() { # run SEED: one consumer, 50 epochs (100,000 samples: seconds, several scrapes), its samples/s
  "$tp" consume --socket "$sock" --dataset raw --batch-size 64 --epochs 50 --seed "$1" \
    --json | field samples_per_s
}
for i in $(seq "$rounds"); do
  run "$i" >>"$work/plain.runs"
  (while :; do curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; sleep "$every"; done) &
  scraper=$!
  run "$i" >>"$work/scraped.runs"
  kill "$scraper"; wait "$scraper" 2>/dev/null || true
  scraper=
done
p=$(median <"$work/plain.runs"); s=$(median <"$work/scraped.runs")
echo "consumer samples/s, median of $rounds: no scrapes $p; a scrape every ${every} s $s; ratio $(awk -v a="$s" -v b="$p" 'BEGIN {printf "%.3f", a / b}')"
echo "  runs: no scrapes $(tr '\n' ' ' <"$work/plain.runs")| scraped $(tr '\n' ' ' <"$work/scraped.runs")"
rm -f "$work"/*.runs
