#!/usr/bin/env bash
# The main job on a built-in demo dataset: installs what is missing, builds, generates an
# ImageFolder of photo-like JPEGs, packs it into a sharded dataset, verifies every
# checksum and decodes every JPEG, and prints the figures of each step.
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
