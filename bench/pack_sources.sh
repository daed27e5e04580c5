#!/usr/bin/env bash
# pack from each input layout, with `cat` of the same input as the reference measured in
# the same run, and an 8-part parallel pack + merge against one pack of the same shards:
#   bench/pack_sources.sh [SAMPLES] [WORKDIR] [RUNS]
# Inputs, made once in WORKDIR from `turbopump gen` JPEGs: the ImageFolder itself, the same
# images as PNG (the first SAMPLES/10), WebDataset shards of them (jpg + cls, 8 shards),
# and those shards gzipped. Medians of RUNS runs; warm page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-4000}
work=${2:-build/bench-sources}
runs=${3:-3}
jobs=$(nproc)
tp=${TURBOPUMP:-$PWD/build/tools/turbopump}
[ -x "$tp" ] || scripts/build.sh build >/dev/null
mkdir -p "$work"
if [ ! -f "$work/inputs.$n" ]; then
  rm -rf "$work"/{images,png,wds,wdsgz} "$work"/inputs.*
  "$tp" gen imagefolder "$work/images" --samples "$n" --classes 10 --seed 1 >/dev/null
  "${PYTHON:-/usr/bin/python3}" - "$work" "$n" <<'PY'
import gzip, io, os, sys, tarfile
from PIL import Image
work, n = sys.argv[1], int(sys.argv[2])
files = sorted((c, f) for c in sorted(os.listdir(f"{work}/images"))
               for f in sorted(os.listdir(f"{work}/images/{c}")))
for c, f in files[: n // 10]:
    os.makedirs(f"{work}/png/{c}", exist_ok=True)
    Image.open(f"{work}/images/{c}/{f}").save(f"{work}/png/{c}/{f[:-4]}.png")
os.makedirs(f"{work}/wds"); os.makedirs(f"{work}/wdsgz")
classes = sorted(os.listdir(f"{work}/images"))
per = (len(files) + 7) // 8
for s in range(8):
    path = f"{work}/wds/shard-{s:04d}.tar"
    with tarfile.open(path, "w") as t:
        for k, (c, f) in enumerate(files[s * per:(s + 1) * per]):
            key = f"{s * per + k:08d}"
            for ext, data in (("jpg", open(f"{work}/images/{c}/{f}", "rb").read()),
                              ("cls", str(classes.index(c)).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}"); info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    with open(path, "rb") as i, gzip.open(f"{work}/wdsgz/shard-{s:04d}.tar.gz", "wb", 6) as o:
        o.write(i.read())
PY
  touch "$work/inputs.$n"
fi

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
timed() { # median seconds of RUNS runs of "$@"
  local ts=()
  for _ in $(seq "$runs"); do
    local t0; t0=$(now)
    "$@" >/dev/null
    ts+=("$(calc "$(now) - $t0")")
  done
  printf '%s\n' "${ts[@]}" | median
}
cat_all() { find "$1" -type f -print0 | sort -z | xargs -0 cat > /dev/null; }
zcat_all() { cat "$1"/*.gz | gzip -dc > /dev/null; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-26s %8s %11s %9s %10s %7s\n' input samples samples/s "MB/s" "cat MB/s" ratio
row() { # name src samples ref-command...
  local name=$1 src=$2 count=$3; shift 3
  local mb; mb=$(du -sb --apparent-size "$src" | awk '{print $1 / 1e6}')
  local c; c=$(timed "$@")
  local p; p=$(timed "$tp" pack "$src" "$work/out" --jobs "$jobs" --force --quiet)
  printf '%-26s %8d %11.0f %9.1f %10.1f %7.2f\n' "$name" "$count" "$(calc "$count / $p")" \
    "$(calc "$mb / $p")" "$(calc "$mb / $c")" "$(calc "$c / $p")"
}
row "imagefolder (jpg)" "$work/images" "$n" cat_all "$work/images"
row "imagefolder (png)" "$work/png" "$((n / 10))" cat_all "$work/png"
row "webdataset .tar" "$work/wds" "$n" cat_all "$work/wds"
row "webdataset .tar.gz" "$work/wdsgz" "$n" zcat_all "$work/wdsgz"
echo "(ratio: time of cat over time of pack --jobs $jobs; above 1 is faster than cat)"

one=$(timed "$tp" pack "$work/wds" "$work/out" --jobs "$jobs" --force --quiet)
parts() {
  rm -rf "$work/parts" "$work/merged" && mkdir "$work/parts"
  seq 0 7 | xargs -P 8 -I{} "$tp" pack "$work/wds" "$work/parts/p{}" --part {}/8 --jobs 1 \
    --quiet
  "$tp" merge "$work"/parts/p* "$work/merged" --quiet
}
eight=$(timed parts)
printf 'one pack --jobs %d: %.2f s; 8 parts (xargs -P 8, --jobs 1 each) + merge: %.2f s; ' \
  "$jobs" "$one" "$eight"
printf 'ratio %.2f\n' "$(calc "$one / $eight")"
rm -rf "$work/out" "$work/parts" "$work/merged"
