#!/usr/bin/env bash
# The main job on a built-in demo dataset: installs what is missing, builds, generates an
# ImageFolder of photo-like JPEGs, packs it into a sharded dataset, verifies it, then
# starts the daemon and reads two epochs as ranks 0 and 1 of a two-process job (decode +
# RandomResizedCrop 224 + flip), printing samples/s and an exactly-once check per epoch.
# TP_DEMO_SAMPLES (default 2000) and TP_DEMO_DIR (default build/demo) change the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build >/dev/null
tp=build/tools/turbopump
dir=${TP_DEMO_DIR:-build/demo}
n=${TP_DEMO_SAMPLES:-2000}
rm -rf "$dir"
mkdir -p "$dir"

echo "== turbopump $($tp --version | cut -d' ' -f2) demo: $n images, $(nproc) cores"
echo "-- generate an ImageFolder of synthetic photographs"
$tp gen imagefolder "$dir/images" --samples "$n" --classes 10 --seed 1
echo "-- pack it into record shards (4 KiB aligned) and into LMDB shards"
$tp pack "$dir/images" "$dir/dataset" --format record --shard-size 64M
$tp pack "$dir/images" "$dir/dataset-lmdb" --format lmdb --shard-size 64M
echo "-- verify every checksum, then decode every JPEG"
$tp verify "$dir/dataset"
$tp verify "$dir/dataset" --decode --jobs "$(nproc)"
$tp verify "$dir/dataset-lmdb"
echo "-- what was built"
$tp inspect "$dir/dataset"

echo "-- serve it, and read 2 epochs as ranks 0 and 1 of a 2-process job"
sock=$dir/turbopump.sock
$tp serve --root "$dir" --socket "$sock" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
pids=()
for r in 0 1; do
  $tp consume --socket "$sock" --dataset dataset --rank $r --world-size 2 --epochs 2 \
    --batch-size 64 --seed 1 --print-ids --json >"$dir/rank$r.out" &
  pids+=($!)
done
wait "${pids[@]}"
for r in 0 1; do
  tail -n1 "$dir/rank$r.out" | python3 -c 'import json, sys; d = json.load(sys.stdin)
print("rank %s: %d samples in %.1f s, %.0f samples/s, first batch after %.0f ms"
      % (sys.argv[1], d["samples"], d["seconds"], d["samples_per_s"], d["first_batch_ms"]))' $r
done
$tp stat --socket "$sock"
cat "$dir/rank0.out" "$dir/rank1.out" | grep -v '^{' | python3 -c 'import collections, sys
n = int(sys.argv[1]); seen = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    e, i = map(int, line.split()); seen[e][i] += 1
for e in sorted(seen):
    c = seen[e]; ok = len(c) == n and sum(c.values()) == 2 * -(-n // 2)
    print("epoch %d: %d samples received, %d distinct of %d: %s" % (e, sum(c.values()), len(c), n,
          "every sample exactly once (padding: %d repeated)" % (sum(c.values()) - n) if ok else "MISMATCH"))
    if not ok: sys.exit(1)' "$n"
kill -TERM $daemon
wait $daemon
trap - EXIT
