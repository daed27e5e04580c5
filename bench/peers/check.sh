#!/usr/bin/env bash
# The benchmark's own test: one peer row of bench/compare.py, run with --check on a small
# generated ImageFolder (first batch's shape and dtype, shuffled, one epoch's count and
# labels), from the venv that bench/compare.sh (bench/peers/install.sh) made:
#
#   bench/peers/check.sh ROW      (ROW: dataloader_tutorial dataloader_fast webdataset dali
#                                  ffcv spdl_example spdl_rrc litdata)
#
# Exits 77 (skipped) with the reason when the venv is missing or the peer did not install
# there (peers.json says why). TURBOPUMP names the turbopump executable (default
# build/tools/turbopump); BENCH_VENV the venv (default build/bench-venv).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$(dirname "$here")")
venv=${BENCH_VENV:-$root/build/bench-venv}
tp=${TURBOPUMP:-$root/build/tools/turbopump}
row=${1:?usage: $0 ROW}
py=$venv/bin/python
if [ ! -x "$py" ] || [ ! -f "$venv/peers.json" ]; then
    echo "SKIP: no benchmark venv at $venv (bench/compare.sh or bench/peers/install.sh make it)"
    exit 77
fi
case $row in
dataloader_tutorial) key=torch script=dataloader_run.py args=(--path tutorial) ;;
dataloader_fast) key=torch script=dataloader_run.py args=(--path fast) ;;
spdl_example) key=spdl script=spdl_run.py args=(--mode example) ;;
spdl_rrc) key=spdl script=spdl_run.py args=(--mode rrc) ;;
webdataset | dali | ffcv | litdata) key=$row script=${row}_run.py args=() ;;
*) echo "unknown row $row" >&2; exit 2 ;;
esac
why=$("$py" -c 'import json, sys
r = json.load(open(sys.argv[1])).get(sys.argv[2], {"ok": False, "reason": "not tried"})
print("" if r.get("ok") else r.get("reason", "?"))' "$venv/peers.json" "$key")
if [ -n "$why" ]; then
    echo "SKIP: $key is not installed in $venv: $why"
    exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 600 images in 6 classes: three batches of 256, the last one partial
"$tp" gen imagefolder "$work/images" --samples 600 --classes 6 --seed 3 --force >/dev/null
if [ "$script" != dataloader_run.py ]; then
    "$py" "$here/$script" prepare --images "$work/images" --out "$work/data" --workers 2 >/dev/null
    args+=(--data "$work/data")
fi
out=$("$py" "$here/$script" run --images "$work/images" --batch-size 256 --workers 2 \
      --seed 1 --check "${args[@]}")
echo "$out"
echo "$out" | "$py" -c 'import json, sys
r = json.loads(sys.stdin.read().splitlines()[-1])
assert r["samples"] == 600 and r["seconds"] > 0 and 0 < r["first"] <= r["seconds"], r'
