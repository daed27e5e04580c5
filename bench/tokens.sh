#!/usr/bin/env bash
# Token windows (seq_len 2048) against references measured in the same run:
#   bench/tokens.sh [WORKDIR] [RUNS] [TOKENS] [BIG_TOKENS]
# 1. tokens/s and GB/s delivered (input_ids + labels, int64) for batch 8 and 64, with 1 and
#    2 ranks (one daemon, 2 threads): turbopump's Loader, nanoGPT-style np.memmap batches
#    and LitData's TokensLoader (from BENCH_VENV, when it has litdata) on the same TOKENS
#    ids (default 268,435,456, warm page cache), each against memcpy's GB/s.
# 2. Time to the first batch on a dataset of BIG_TOKENS ids (default 2,147,483,648; 0
#    skips it): with a running daemon, and with the private daemon a Loader starts itself.
# Medians of RUNS runs (default 3). PYTHON (default /usr/bin/python3) needs numpy and
# torch; the turbopump package is built from this tree into WORKDIR, against the build in
# BUILD (default build, made by scripts/build.sh when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/bench-tokens}
runs=${2:-3}
tokens=${3:-268435456}
big=${4:-2147483648}
py=${PYTHON:-/usr/bin/python3}
venv=${BENCH_VENV:-build/bench-venv}
build=$(cd "${BUILD:-build}" 2>/dev/null && pwd || echo "$PWD/build")
tp=$build/tools/turbopump
[ -x "$tp" ] || scripts/build.sh "$build" >/dev/null
mkdir -p "$work/root"
work=$(cd "$work" && pwd)
cc -O2 -o "$work/memcpy" bench/memcpy.c
rm -f "$work"/*.runs
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": \\([0-9.e+]*\\).*/\\1/p"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

site=$work/site
if [ ! -f "$site/turbopump/__init__.py" ]; then
  TP_CUDA=0 TP_BUILD_DIR=$build "$py" -m pip install -q --no-deps --no-build-isolation \
    --target "$site" bindings/python
  rm -rf bindings/python/build bindings/python/turbopump.egg-info
fi
export PYTHONPATH=$site TURBOPUMP_BIN=$tp

[ -f "$work/stream.bin" ] || "$py" bench/tokens.py stream --tokens "$tokens" --out "$work/stream.bin"
if [ ! -d "$work/root/tok" ]; then
  t0=$(date +%s.%N)
  "$tp" pack --tokens "$work/stream.bin" "$work/root/tok" --dtype uint16 --separator 50256 --quiet
  t1=$(date +%s.%N)
  awk -v t0="$t0" -v t1="$t1" -v n="$tokens" 'BEGIN {printf "pack --tokens: %.0f M ids/s\n", n / (t1 - t0) / 1e6}'
fi
cat "$work/stream.bin" "$work"/root/tok/*.tpt >/dev/null
have_litdata=0
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import litdata' 2>/dev/null; then
  have_litdata=1
  "$venv/bin/python" bench/peers/litdata_tokens_run.py prepare --bin "$work/stream.bin" \
    --out "$work/litdata" --seq-len 2048 >/dev/null
  cat "$work"/litdata/*.bin >/dev/null
else
  echo "LitData rows skipped: no litdata in $venv (bench/peers/install.sh makes it)"
fi

sock=$work/tp.sock
"$tp" serve --root "$work/root" --socket "$sock" --threads 2 --quiet &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

for i in $(seq "$runs"); do
  "$work/memcpy" 2 >>"$work/memcpy.runs"
  for b in 8 64; do
    for r in 1 2; do
      "$py" bench/tokens.py turbopump --data tok --socket "$sock" --batch $b --ranks $r \
        --seconds 3 | field gb_s >>"$work/tp.$b.$r.runs"
      "$py" bench/tokens.py memmap --bin "$work/stream.bin" --batch $b --ranks $r \
        --seconds 3 | field gb_s >>"$work/mm.$b.$r.runs"
    done
    if [ $have_litdata = 1 ]; then
      "$venv/bin/python" bench/peers/litdata_tokens_run.py run --data "$work/litdata" \
        --batch $b --workers 2 --seconds 3 | field gb_s >>"$work/ld.$b.1.runs"
    fi
  done
done
m=$(median <"$work/memcpy.runs")
echo "memcpy: $m GB/s (runs: $(tr '\n' ' ' <"$work/memcpy.runs"))"
printf '%-8s %-6s %-24s %-24s %-24s\n' batch ranks turbopump "np.memmap (nanoGPT)" "LitData TokensLoader"
row() { # name file -> "X.XX GB/s, N M tok/s (r memcpy)"
  [ -f "$1" ] || { echo "-"; return; }
  local g; g=$(median <"$1")
  awk -v g="$g" -v m="$m" 'BEGIN {printf "%.2f GB/s %.0fM tok/s (%.2f)", g, g / 16 * 1e3, g / m}'
}
for b in 8 64; do
  for r in 1 2; do
    printf '%-8s %-6s %-24s %-24s %-24s\n' $b $r "$(row "$work/tp.$b.$r.runs")" \
      "$(row "$work/mm.$b.$r.runs")" "$(row "$work/ld.$b.$r.runs")"
  done
done
echo "  (GB/s of int64 input_ids + labels; in brackets, the ratio to memcpy)"
for f in "$work"/tp.*.runs "$work"/mm.*.runs "$work"/ld.*.runs; do
  [ -f "$f" ] && echo "  runs $(basename "$f" .runs): $(tr '\n' ' ' <"$f")"
done

# 2: the first batch of a large dataset
[ "$big" -gt 0 ] || exit 0
if [ ! -d "$work/root/big" ]; then
  "$py" bench/tokens.py stream --tokens "$big" --out "$work/big.bin"
  "$tp" pack --tokens "$work/big.bin" "$work/root/big" --dtype uint16 --separator 50256 --quiet
  rm -f "$work/big.bin"
fi
for i in $(seq "$runs"); do
  # a fresh daemon each run, so the dataset is opened (manifest, every shard's index) anew
  kill $daemon; wait $daemon 2>/dev/null || true
  "$tp" serve --root "$work/root" --socket "$sock" --threads 2 --quiet &
  daemon=$!
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
  "$py" bench/tokens.py first-batch --data big --socket "$sock" | field first_batch_s >>"$work/first.runs"
  "$py" bench/tokens.py first-batch --data "$work/root/big" | field first_batch_s >>"$work/first_private.runs"
done
n=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["tokens"])' "$work/root/big/manifest.json")
echo "first batch, $n ids: running daemon $(median <"$work/first.runs") s, private daemon $(median <"$work/first_private.runs") s"
echo "  runs: $(tr '\n' ' ' <"$work/first.runs")| private: $(tr '\n' ' ' <"$work/first_private.runs")"
