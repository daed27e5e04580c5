#!/usr/bin/env bash
# CLI integration tests: `cli.sh CASE` runs one case against $TURBOPUMP in a scratch
# directory that is removed afterwards. Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail

TP=${TURBOPUMP:?set TURBOPUMP to the turbopump binary}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tp-cli-XXXXXX")
trap 'chmod -R u+rwx "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
cd "$WORK"

fail() { echo "FAIL: $*" >&2; exit 1; }
# expect STATUS CMD...: runs CMD, saving stdout/stderr in out/err, and checks its status.
expect() {
    local want=$1; shift
    local got=0
    "$@" >out 2>err || got=$?
    [ "$got" -eq "$want" ] || { cat out err >&2; fail "'$*' exited $got, expected $want"; }
}
contains() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks '$2'"; }; }
flip() { python3 -c 'import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))' "$1" "$2"; }
same_tree() { diff -r "$1" "$2" >/dev/null || fail "$1 and $2 differ"; }
gen_images() { "$TP" gen imagefolder "$1" --samples "$2" --classes "${3:-3}" --seed 7 \
                   --quality 80 >/dev/null; }

case_help() {
    expect 0 "$TP" --help;        contains out "pack"; contains out "verify"
    expect 0 "$TP" --version;     contains out "turbopump 0."
    for c in gen pack inspect verify bench serve consume stat; do
        expect 0 "$TP" "$c" --help; contains out "Usage"
    done
    expect 2 "$TP" serve;                 contains err "--root DIR is required"
    expect 2 "$TP" consume;               contains err "--dataset NAME is required"
    expect 2 "$TP" consume --dataset x --rank 2 --world-size 2; contains err "not below"
    expect 2 "$TP" serve --root . --on-error maybe; contains err "bad option"
    expect 2 "$TP";               contains err "Usage"
    expect 2 "$TP" frobnicate;    contains err "unknown command"
    expect 2 "$TP" pack only-one; contains err "needs SRC and DST"
    expect 2 "$TP" pack a b --align 3000; contains err "power of two"
    expect 2 "$TP" pack a b --jobs 0;     contains err "--jobs"
    expect 2 "$TP" pack a b --shard-size 12Q; contains err "--shard-size"
    expect 2 "$TP" pack a b --zstd-dict;      contains err "needs --zstd"
    expect 2 "$TP" pack a b --input zip;      contains err "--input"
    expect 2 "$TP" pack a b --fields ,;       contains err "--fields"
    expect 2 "$TP" gen imagefolder x;     contains err "--samples"
}

case_roundtrip() {
    gen_images img 60
    [ "$(find img -name '*.jpg' | wc -l)" -eq 60 ] || fail "gen wrote the wrong count"
    gen_images img2 60; same_tree img img2
    "$TP" gen imagefolder img3 --samples 60 --classes 3 --seed 8 --quality 80 >/dev/null
    ! diff -rq img img3 >/dev/null || fail "a different seed gave the same images"
    expect 0 "$TP" pack img ds --jobs 2; contains out "packed 60 samples"
    contains out "skipped 0 inputs"
    expect 0 "$TP" verify ds;          contains out "60 samples"; contains out "0 problems"
    expect 0 "$TP" verify ds --decode --jobs 2; contains out "images decoded"
    expect 0 "$TP" inspect ds;         contains out "samples:  60"; contains out "class0002"
    expect 0 "$TP" inspect ds --json
    python3 - out <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["samples"] == 60 and d["format"] == "record" and d["align"] == 4096, d
assert [f["name"] for f in d["fields"]] == ["jpg", "cls"], d["fields"]
assert d["classes"] == ["class0000", "class0001", "class0002"], d["classes"]
assert sum(s["samples"] for s in d["shards"]) == 60
PY
    [ ! -e ds.partial ] || fail "staging directory left behind"
    # The same files give the same bytes however the source path is spelled.
    expect 0 "$TP" pack ./img/ ds2 --jobs 1
    same_tree ds ds2
    # One sample's fields: the JPEG's bytes as they were, the label as text.
    local first; first=$(find img/class0000 -name '*.jpg' | sort | head -1)
    "$TP" inspect ds --sample 0 --field jpg > got.jpg
    cmp got.jpg "$first" || fail "inspect --field jpg is not the file"
    expect 0 "$TP" inspect ds --sample 0 --field cls; contains out "0"
    expect 0 "$TP" inspect ds --sample 59; contains out '"cls": 2'
    expect 1 "$TP" inspect ds --sample 60; contains err "out of range"
    expect 1 "$TP" inspect ds --sample 0 --field png; contains err "no field 'png'"
    expect 2 "$TP" inspect ds --field jpg; contains err "needs --sample"
}

case_jobs_identical() {
    gen_images img 80
    for opts in "--format record" "--format record --align 1" "--format lmdb" \
                "--format record --zstd 3" "--format lmdb --zstd 3 --zstd-dict"; do
        # shellcheck disable=SC2086
        "$TP" pack img a --jobs 1 --shard-size 1M $opts --quiet
        # shellcheck disable=SC2086
        "$TP" pack img b --jobs 2 --shard-size 1M $opts --quiet
        [ "$(ls a | wc -l)" -gt 2 ] || fail "expected several shards with $opts"
        same_tree a b
        expect 0 "$TP" verify a --decode
        rm -rf a b
    done
}

case_lmdb() {
    gen_images img 40
    expect 0 "$TP" pack img ds --format lmdb --shard-size 1M
    expect 0 "$TP" verify ds --decode; contains out "40 samples"
    expect 0 "$TP" inspect ds;         contains out "lmdb shards"
    ls ds/*.mdb >/dev/null || fail "no .mdb shards"
    [ -z "$(ls ds | grep -v -e '\.mdb$' -e '^manifest.json$')" ] || fail "stray files: $(ls ds)"
}

# Builds img/ with 12 good JPEGs in class 'good' and one of each bad input; prints the
# number of inputs that must be skipped.
make_bad_tree() {
    gen_images src 12 1
    mkdir -p img/good img/bad img/empty img/sub
    cp src/class0000/*.jpg img/good/
    local one; one=$(ls src/class0000/*.jpg | head -1)
    : > img/bad/zero.jpg
    echo "hello, not an image" > img/bad/text.jpg
    head -c "$(( $(stat -c %s "$one") / 2 ))" "$one" > img/bad/truncated.jpg
    cp "$one" "img/bad/$(printf 'bad\xffname.jpg')"
    ln -s loop.jpg img/bad/loop.jpg
    ln -s ../bad img/bad/cycle
    ln -s /nonexistent/file.jpg img/bad/dangling.jpg
    echo notes > img/bad/readme.txt
    mkdir "img/$(printf 'cls\xfe')" "img/$(printf 'surrogate\xed\xa0\x80')"
    cp "$one" img/sub/ok.jpg
    local skipped=11
    if [ "$(id -u)" -ne 0 ]; then
        cp "$one" img/bad/unreadable.jpg; chmod 000 img/bad/unreadable.jpg
        skipped=12
    fi
    echo "$skipped"
}

case_bad_inputs() {
    local skipped; skipped=$(make_bad_tree)
    expect 0 "$TP" pack img ds --jobs 2
    contains out "packed 13 samples"; contains out "skipped $skipped inputs"
    [ "$(grep -c 'warning: skipping' err)" -eq "$skipped" ] || { cat err; fail "warning count"; }
    contains err "img/bad/zero.jpg: empty file"
    contains err "img/bad/text.jpg: not a JPEG"
    contains err "img/bad/truncated.jpg: truncated JPEG"
    contains err "not valid UTF-8"
    contains err "img/bad/loop.jpg: symlink loop"
    contains err "img/bad/cycle: symlink loop"
    contains err "img/bad/dangling.jpg: No such file"
    contains err "img/bad/readme.txt: not a .jpg/.jpeg/.png file"
    contains err "img/empty: class directory has no usable"
    expect 0 "$TP" verify ds --decode
    expect 0 "$TP" inspect ds --json
    python3 -c 'import json,sys; d=json.load(open("out")); assert d["classes"]==["bad","empty","good","sub"], d["classes"]'
}

case_strict() {
    make_bad_tree >/dev/null
    expect 1 "$TP" pack img ds --strict
    contains err "(--strict)"
    [ ! -e ds ] && [ ! -e ds.partial ] || fail "--strict left output behind"
    rm -rf img/bad img/empty "img/$(printf 'cls\xfe')" "img/$(printf 'surrogate\xed\xa0\x80')"
    expect 0 "$TP" pack img ds --strict; contains out "packed 13 samples"
}

case_refuse_overwrite() {
    gen_images img 20
    expect 0 "$TP" pack img ds
    local before; before=$(md5sum ds/*)
    expect 1 "$TP" pack img ds;          contains err "--force"
    [ "$(md5sum ds/*)" = "$before" ] || fail "refused pack changed the dataset"
    gen_images img2 30
    expect 0 "$TP" pack img2 ds --force; contains out "packed 30 samples"
    expect 0 "$TP" verify ds;            contains out "30 samples"
    mkdir precious; echo keep > precious/data.txt
    expect 1 "$TP" pack img precious --force; contains err "not a dataset"
    [ "$(cat precious/data.txt)" = keep ] || fail "non-dataset directory was touched"
    mkdir emptydir
    expect 0 "$TP" pack img emptydir;    contains out "packed 20 samples"
}

case_corrupt() {
    gen_images img 20
    "$TP" pack img ds --quiet
    cp -r ds pristine
    flip ds/shard-00000.tpr $((4096 + 2000))           # inside the first record
    expect 1 "$TP" verify ds; contains err "shard-00000.tpr: sample 0"
    contains err "checksum mismatch"; contains out "1 problem"
    rm -rf ds; cp -r pristine ds
    flip ds/manifest.json 40
    expect 1 "$TP" verify ds; contains err "manifest.json"
    rm -rf ds; cp -r pristine ds
    local size; size=$(stat -c %s ds/shard-00000.tpr)
    flip ds/shard-00000.tpr $((size - 70))               # the index
    expect 1 "$TP" verify ds; contains err "index checksum mismatch"
    rm -rf ds; cp -r pristine ds
    truncate -s $((size - 100)) ds/shard-00000.tpr
    expect 1 "$TP" verify ds; contains err "shard-00000.tpr"; contains err "manifest says"
    rm -rf ds; cp -r pristine ds
    expect 0 "$TP" verify ds
    expect 1 "$TP" verify nonexistent; contains err "not a dataset"
}

# Large valid JPEGs (a big APP15 segment) make the pack slow enough to kill mid-way.
make_big_jpegs() {
    gen_images src 4 1
    python3 - src/class0000 big/c <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
jpegs = sorted(os.listdir(src))
pad = b"\xff\xef" + (65533).to_bytes(2, "big") + bytes(65531)
for i in range(300):
    data = open(os.path.join(src, jpegs[i % len(jpegs)]), "rb").read()
    open(os.path.join(dst, "%04d.jpg" % i), "wb").write(data[:2] + pad * 8 + data[2:])
PY
}

case_interrupted() {
    make_big_jpegs
    local killed=0
    for attempt in 1 2 3; do
        rm -rf ds ds.partial
        "$TP" pack big ds --jobs 1 --shard-size 4096 --quiet &
        local pid=$!
        for _ in $(seq 1 2000); do
            [ "$(ls ds.partial 2>/dev/null | wc -l)" -ge 3 ] && break
            sleep 0.005
        done
        if kill -9 "$pid" 2>/dev/null; then killed=1; fi
        wait "$pid" 2>/dev/null || true
        [ "$killed" -eq 1 ] && break
    done
    [ "$killed" -eq 1 ] || fail "pack finished before it could be killed"
    [ ! -e ds ] || fail "an interrupted pack left $WORK/ds"
    expect 1 "$TP" verify ds;  contains err "not a dataset"
    expect 1 "$TP" inspect ds; contains err "not a dataset"
    expect 0 "$TP" pack big ds --jobs 2 --quiet   # the stale staging directory is reclaimed
    expect 0 "$TP" verify ds
    [ ! -e ds.partial ] || fail "staging directory left behind"
}

case_write_error() {
    gen_images img 40
    # A file size limit makes every write past it fail with EFBIG.
    expect 1 bash -c "ulimit -f 512; exec '$TP' pack img ds --quiet"
    contains err "shard-00000.tpr: File too large"
    [ ! -e ds ] && [ ! -e ds.partial ] || fail "failed pack left output behind"
    # A full file system, where we may mount one.
    if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null &&
       unshare -m true 2>/dev/null; then
        mkdir small
        expect 1 unshare -m bash -c "mount -t tmpfs -o size=1m tmpfs small &&
            '$TP' pack img small/ds --quiet; rc=\$?; ls -A small > listing; exit \$rc"
        contains err "No space left on device"
        [ ! -s listing ] || fail "full disk left: $(cat listing)"
    else
        echo "skipping the full-disk part: cannot mount a tmpfs here" >&2
    fi
}

case_tensors() {
    expect 0 "$TP" gen tensors t --samples 100 --record-bytes 4096 --classes 7 --seed 3
    contains out "100 records of 4096 bytes"
    expect 0 "$TP" verify t
    local size; size=$(stat -c %s t/shard-00000.tpr)
    [ "$size" -eq $((4096 + 100 * 4096 + 100 * 24 + 64)) ] || fail "unexpected shard size $size"
    expect 0 "$TP" gen tensors t2 --samples 100 --record-bytes 4096 --classes 7 --seed 3
    same_tree t t2
    expect 0 "$TP" gen tensors img --samples 10 --shape 8x8x3 --format lmdb
    expect 0 "$TP" inspect img --json
    python3 -c 'import json; d=json.load(open("out")); f=d["fields"][1]; assert f["shape"]==[8,8,3] and f["dtype"]=="uint8", f'
    expect 2 "$TP" gen tensors x --samples 10 --record-bytes 100; contains err "multiple of 8"
    expect 2 "$TP" gen tensors x --samples 10; contains err "exactly one of"
}

case_bench_io() {
    expect 0 "$TP" gen tensors t --samples 2000 --record-bytes 4096
    for backend in uring posix; do
        for direct in "" --direct; do
            # shellcheck disable=SC2086
            expect 0 "$TP" bench io t --seconds 1 --qd 8 --backend $backend $direct --json
            python3 - out "$backend" "$direct" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["backend"] == {"uring": "io_uring", "posix": "posix"}[sys.argv[2]], d
assert d["direct"] == (sys.argv[3] == "--direct") and d["qd"] == 8, d
assert d["reads"] > 100 and d["errors"] == 0 and d["iops"] > 0, d
assert d["read_bytes"] == 4096 and d["p99_us"] >= d["p50_us"] > 0, d
PY
        done
    done
    expect 0 "$TP" bench io t --seconds 1 --pattern sequential; contains out "sequential reads"
    TP_IO=posix expect 0 "$TP" bench io t --seconds 1;      contains out "posix"
    expect 2 "$TP" bench io t --qd 0;                        contains err "--qd"
    expect 2 "$TP" bench frobnicate t;                       contains err "bench io"
    expect 1 "$TP" bench io nonexistent;                     contains err "not a dataset"
}

case_jpeg_seek() { # pack --jpeg-seek: same pixels, restart markers, counted seekable decodes
    gen_images img 30
    expect 0 "$TP" pack img ds --jpeg-seek --jobs 2
    contains out "jpeg-seek: 30 JPEGs re-encoded with restart markers"
    contains out "0 kept as they were"
    expect 0 "$TP" pack img ds1 --jpeg-seek --jobs 1 --quiet
    same_tree ds ds1
    expect 0 "$TP" verify ds --decode; contains out "0 problems"
    local first; first=$(find img/class0000 -name '*.jpg' | sort | head -1)
    "$TP" inspect ds --sample 0 --field jpg >s.jpg
    ! cmp -s s.jpg "$first" || fail "the stored JPEG was not re-encoded"
    djpeg -ppm "$first" >a.ppm && djpeg -ppm s.jpg >b.ppm
    cmp a.ppm b.ppm || fail "the seekable JPEG decodes to other pixels"
    python3 -c 'import sys; d = open("s.jpg", "rb").read(); assert b"\xff\xdd" in d and b"\xff\xd0" in d[d.index(b"\xff\xda"):], "no restart markers"'
    expect 0 "$TP" bench decode ds --seconds 1 --json
    python3 -c 'import json; d=json.load(open("out")); assert d["seek_decodes"] > 0 and d["seek_fallbacks"] == 0 and d["errors"] == 0, d'
    expect 0 "$TP" bench decode ds --seconds 1 --json --no-seek
    python3 -c 'import json; d=json.load(open("out")); assert d["seek_decodes"] == 0, d'
    expect 0 "$TP" pack img ds8 --jpeg-seek=8 --quiet
    expect 2 "$TP" pack img ds0 --jpeg-seek=0; contains err "--jpeg-seek"
    expect 0 "$TP" pack --help; contains out "--jpeg-seek"
}

case_bench_decode() {
    gen_images img 20
    "$TP" pack img ds --quiet
    for t in rrc224 center224 none; do
        expect 0 "$TP" bench decode ds --transform "$t" --threads 2 --seconds 1 --json
        python3 -c 'import json,sys; d=json.load(open("out")); assert d["images"] >= 20 and d["errors"] == 0 and d["images_per_s"] > 0 and d["threads"] == 2 and d["distinct_images"] == 20, d'
    done
    expect 0 "$TP" bench decode ds --exact --seconds 1; contains out "rrc224 on 1 thread"
    expect 0 "$TP" bench decode ds --normalize f16 --seconds 1
    expect 0 "$TP" bench decode ds --scales all --seconds 1 --json; contains out '"scales": "all"'
    expect 2 "$TP" bench decode ds --scales odd;         contains err "bad option"
    expect 2 "$TP" bench decode ds --exact --scales pow2; contains err "takes no --scales"
    expect 2 "$TP" bench decode ds --normalize f64
    expect 0 "$TP" bench decode ds --samples 5 --seconds 1 --json; contains out '"distinct_images": 5'
    expect 1 "$TP" bench decode ds --transform blur3;   contains err "unknown op 'blur3'"
    # paired rounds against TurboJPEG's full decode, of the same images or another dataset's
    expect 0 "$TP" bench decode ds --versus-tjbench --seconds 2 --json
    python3 -c 'import json; d=json.load(open("out")); assert d["rounds"] >= 3 and d["images"] > 0 and d["tjbench_frames"] > 0 and d["errors"] == 0 and 0.05 < d["ratio"] < 20, d'
    expect 0 "$TP" bench decode ds --versus-tjbench=ds --transform none --seconds 1
    contains out "against TurboJPEG's full decode of ds"
    expect 2 "$TP" bench decode ds --versus-tjbench --threads 2; contains err "one thread"
    "$TP" gen tensors t --samples 10 --record-bytes 4096 >/dev/null
    expect 1 "$TP" bench decode ds --versus-tjbench=t;   contains err "no 'jpg' field"
    expect 1 "$TP" bench decode t;                       contains err "no 'jpg' field"
}

"case_${1:?usage: cli.sh CASE}"
echo "PASS: $1"
