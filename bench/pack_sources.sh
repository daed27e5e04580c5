#!/usr/bin/env bash
# pack from each input layout, with two references measured in the same run: `cat` of
# the input (reading it) and `cp` of it to the output's file system with a sync (reading
# and writing as many bytes, durably, as pack must), and an 8-part parallel pack + merge
# against one pack of the same shards:
#   bench/pack_sources.sh [SAMPLES] [WORKDIR] [RUNS]
# Inputs, made once in WORKDIR from `turbopump gen` JPEGs: the ImageFolder itself, the same
# images as PNG (the first SAMPLES/10), WebDataset shards of them (jpg + cls, 8 shards),
# those shards gzipped, a CSV listing of the JPEGs and TFRecords of the first SAMPLES/10.
# Medians of RUNS runs; warm page cache.
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
with open(f"{work}/listing.csv", "w") as f:
    f.write("path,label\n")
    for c, name in files:
        f.write(f"images/{c}/{name},{c}\n")
# TFRecords of tf.train.Example {image/encoded, image/class/label} for the first n/10
# images (a CRC-32C in Python is slow), 4 files
T = [0] * 256
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T[i] = c
def crc(b):
    c = 0xFFFFFFFF
    for x in b:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return ((((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")
def var(v):
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out
def ld(k, b):
    return var(k << 3 | 2) + var(len(b)) + b
os.makedirs(f"{work}/tfrecord")
few = files[: n // 10]
for s in range(4):
    with open(f"{work}/tfrecord/train-{s:04d}.tfrecord", "wb") as out:
        for c, name in few[s * len(few) // 4:(s + 1) * len(few) // 4]:
            img = open(f"{work}/images/{c}/{name}", "rb").read()
            feats = ld(1, ld(1, b"image/encoded") + ld(2, ld(1, ld(1, img)))) + \
                ld(1, ld(1, b"image/class/label") + ld(2, ld(3, ld(1, var(classes.index(c))))))
            data = ld(1, feats)
            size = len(data).to_bytes(8, "little")
            out.write(size + crc(size) + data + crc(data))
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
cp_sync() { rm -rf "$work/copy" && cp -r "$1" "$work/copy" && sync -f "$work/copy"; }
zcat_all() { cat "$1"/*.gz | gzip -dc > /dev/null; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '%-20s %7s %10s %7s %9s %6s %12s %6s\n' input samples samples/s "MB/s" "cat MB/s" ratio \
  "cp+sync MB/s" ratio
row() { # name src samples ref-command...; $data: where the bytes are, when not in src
  local name=$1 src=$2 count=$3; shift 3
  local bytes=${data:-$src}
  local mb; mb=$(du -sb --apparent-size "$bytes" | awk '{print $1 / 1e6}')
  local c; c=$(timed "$@")
  local w; w=$(timed cp_sync "$bytes")
  local p; p=$(timed "$tp" pack "$src" "$work/out" --jobs "$jobs" --force --quiet)
  printf '%-20s %7d %10.0f %7.1f %9.1f %6.2f %12.1f %6.2f\n' "$name" "$count" \
    "$(calc "$count / $p")" "$(calc "$mb / $p")" "$(calc "$mb / $c")" "$(calc "$c / $p")" \
    "$(calc "$mb / $w")" "$(calc "$w / $p")"
}
row "imagefolder (jpg)" "$work/images" "$n" cat_all "$work/images"
row "imagefolder (png)" "$work/png" "$((n / 10))" cat_all "$work/png"
row "webdataset .tar" "$work/wds" "$n" cat_all "$work/wds"
row "webdataset .tar.gz" "$work/wdsgz" "$n" zcat_all "$work/wdsgz"
row "tfrecord" "$work/tfrecord" "$((n / 10))" cat_all "$work/tfrecord"
data=$work/images row "listing (csv)" "$work/listing.csv" "$n" cat_all "$work/images"
echo "(ratios: the reference's time over pack --jobs $jobs's; above 1, pack is faster)"

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
rm -rf "$work/out" "$work/parts" "$work/merged" "$work/copy"
