#!/usr/bin/env bash
# Service integration tests: `service.sh CASE` starts the daemons and consumers a case
# needs, as separate processes, in a scratch directory removed afterwards (every daemon
# started here is killed on exit). Exit 0 pass, 1 fail, 77 skip.
set -euo pipefail

TP=${TURBOPUMP:?set TURBOPUMP to the turbopump binary}
. "$(dirname "${BASH_SOURCE[0]}")/scratch.sh"
scratch_dir tp-svc
# serve NAME [OPTIONS]: starts a daemon on socket NAME.sock serving root/.
serve() {
    local name=$1; shift
    "$TP" serve --root root --socket "$WORK/$name.sock" --threads 2 "$@" 2>"$name.log" &
    PIDS+=($!)
    for _ in $(seq 200); do [ -S "$WORK/$name.sock" ] && return 0; sleep 0.02; done
    cat "$name.log" >&2; fail "daemon $name did not start"
}
consume() { "$TP" consume --no-autostart "$@"; }
tensors() { "$TP" gen tensors "root/$1" --samples "$2" --shape 4x4x1 --classes 5 >/dev/null; }

# check_epochs FILE N WORLD DROP: the "EPOCH ID" lines of all ranks cover each epoch as
# torch's DistributedSampler does: without drop_last every id at least once and
# WORLD*ceil(N/WORLD) in all; with it no id twice (full batches of B only).
check_epochs() {
    python3 - "$@" <<'PY'
import collections, sys
path, n, world, drop, batch, epochs = sys.argv[1], *map(int, sys.argv[2:])
seen = collections.defaultdict(collections.Counter)
for line in open(path):
    e, i = map(int, line.split())
    seen[e][i] += 1
assert sorted(seen) == list(range(epochs)), sorted(seen)
for e, c in seen.items():
    assert all(0 <= i < n for i in c), "id out of range"
    if drop:
        per = n // world // batch * batch
        assert max(c.values()) == 1 and sum(c.values()) == world * per, (e, sum(c.values()))
    else:
        assert len(c) == n and sum(c.values()) == world * -(-n // world), (e, len(c))
PY
}

case_exact_once() {
    tensors t 101
    serve d
    for drop in 0 1; do
        for w in 1 2 3 4 5 6 7 8; do
            local opts=(--socket "$WORK/d.sock" --dataset t --batch-size 4 --epochs 2 \
                        --seed 9 --world-size "$w" --print-ids)
            [ "$drop" = 1 ] && opts+=(--drop-last)
            for r in $(seq 0 $((w - 1))); do consume "${opts[@]}" --rank "$r" >"ids.$r" & done
            wait_all=$(jobs -p | grep -v -x -F "$(printf '%s\n' "${PIDS[@]}")" || true)
            for p in $wait_all; do wait "$p" || fail "a consumer failed (w=$w)"; done
            cat ids.* >all; rm ids.*
            check_epochs all 101 "$w" "$drop" 4 2 || fail "world $w drop_last $drop"
        done
    done
}

case_epoch_limit() { # consume --epochs: the daemon prepares no batch past the last epoch
    tensors t 100
    serve d --quiet
    local pids=()
    for r in 0 1; do
        consume --socket "$WORK/d.sock" --dataset t --batch-size 10 --epochs 3 --world-size 2 \
            --rank "$r" --prefetch 8 --json >"c.$r" & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "a consumer failed"; done
    "$TP" stat --socket "$WORK/d.sock" --json >st
    python3 -c '
import json
st = json.load(open("st")); got = [json.load(open("c.%d" % r))["samples"] for r in (0, 1)]
assert got == [150, 150], got
assert st["io"]["reads"] == 300 and st["decode"]["done"] == 300, st' || fail "records read past the epochs"
    # with --batches the epoch limit does not apply: 2 epochs' batches and a half
    consume --socket "$WORK/d.sock" --dataset t --batch-size 20 --batches 12 --json >c.b
    python3 -c 'import json; d = json.load(open("c.b")); assert d["samples"] == 240, d' ||
        fail "--batches past one epoch"
}

case_order() {
    tensors t 50
    serve d
    local o=(--socket "$WORK/d.sock" --dataset t --batch-size 8 --epochs 2 --print-ids)
    consume "${o[@]}" --seed 1 >a; consume "${o[@]}" --seed 1 >b; consume "${o[@]}" --seed 2 >c
    cmp -s a b || fail "same seed, different order"
    cmp -s a c && fail "different seeds, same order"
    [ "$(grep '^0 ' a | cut -d' ' -f2)" != "$(grep '^1 ' a | cut -d' ' -f2)" ] ||
        fail "epochs 0 and 1 have the same order"
    consume "${o[@]}" --no-shuffle --epochs 1 | cut -d' ' -f2 >d
    seq 0 49 | cmp -s - d || fail "--no-shuffle is not dataset order"
}

case_step() { # --step-ms: an emulated accelerator holds each batch and reports its AU
    tensors t 40
    serve d
    local j
    j=$(consume --socket "$WORK/d.sock" --dataset t --batch-size 8 --batches 4 --step-ms 50 \
        --json)
    python3 - "$j" <<'PY' || fail "step-ms report: $j"
import json, sys
r = json.loads(sys.argv[1])
assert r["batches"] == 4 and abs(r["compute_s"] - 0.2) < 1e-9, r
assert r["seconds"] >= 0.2 and 0 < r["au"] <= 1, r
assert abs(r["au"] * r["seconds"] - 0.2) < 0.002, r  # seconds is printed to the millisecond
PY
}

case_resume() {
    tensors t 90
    serve d
    local o=(--socket "$WORK/d.sock" --dataset t --batch-size 8 --seed 4 --world-size 2 --rank 1)
    consume "${o[@]}" --epochs 3 --print-ids >full
    consume "${o[@]}" --batches 7 --print-ids >part1
    consume "${o[@]}" --batches 7 --json >state
    read -r e b < <(python3 -c 'import json,sys; d=json.load(open("state")); print(d["next_epoch"], d["next_batch"])')
    [ "$e" = 1 ] && [ "$b" = 1 ] || fail "state after 7 of 6-batch epochs: $e $b"
    consume "${o[@]}" --start-epoch "$e" --start-batch "$b" --batches $((18 - 7)) --print-ids >part2
    cat part1 part2 | cmp -s - full || fail "resumed run differs from the uninterrupted one"
}

case_two_daemons() { # two nodes: global ranks 0-3 on one daemon, 4-7 on the other
    tensors t 77
    serve a; serve b
    for r in 0 1 2 3 4 5 6 7; do
        local s=a; [ "$r" -ge 4 ] && s=b
        consume --socket "$WORK/$s.sock" --dataset t --batch-size 3 --epochs 2 --seed 5 \
            --world-size 8 --rank "$r" --print-ids >"ids.$r" &
    done
    for p in $(jobs -p | grep -v -x -F "$(printf '%s\n' "${PIDS[@]}")"); do wait "$p" || fail "consumer"; done
    cat ids.* >all
    check_epochs all 77 8 0 3 2 || fail "two daemons do not cover the dataset once"
}

case_images() {
    "$TP" gen imagefolder img --samples 24 --classes 3 --seed 2 >/dev/null
    "$TP" pack img root/im --quiet
    serve d
    consume --socket "$WORK/d.sock" --dataset im --batch-size 8 --epochs 2 --json >out
    python3 -c 'import json; d=json.load(open("out")); assert d["samples"] == 48 and d["bytes"] == 48 * (224*224*3 + 8), d'
    consume --socket "$WORK/d.sock" --dataset im --batch-size 8 --transform center224 \
        --output float16 --fields jpg --json >out
    python3 -c 'import json; d=json.load(open("out")); assert d["bytes"] == 24 * 224*224*3*2, d'
    ! consume --socket "$WORK/d.sock" --dataset im --transform none --fields jpg 2>err ||
        fail "transform none accepted for images"
    grep -q "fixes their size" err || fail "no reason given for transform none"
    "$TP" stat --socket "$WORK/d.sock" --json >stat
    python3 -c 'import json; d=json.load(open("stat")); assert d["io"]["reads"] >= 72 and "sessions" in d, d'
    [ "$(stat -c %a d.sock)" = 660 ] || fail "socket mode is not 0660"
    # the shards were just written: decode threads read them from the page cache (where
    # the file system takes RWF_NOWAIT); --io-engine-only sends every read to the engine
    python3 -c 'import json; d=json.load(open("stat"))["io"]; assert d["page_cache_reads"] + d["page_cache_misses"] <= d["reads"] and (d["page_cache_reads"] > 0 or d["page_cache_misses"] <= 1), d'
    "$TP" stat --socket "$WORK/d.sock" | grep -q "from the page cache by decode threads" ||
        fail "stat does not show the page-cache reads"
    serve e --io-engine-only
    consume --socket "$WORK/e.sock" --dataset im --batch-size 8 --epochs 1 --json >out
    "$TP" stat --socket "$WORK/e.sock" --json >stat
    python3 -c 'import json; d=json.load(open("stat"))["io"]; assert d["reads"] >= 24 and d["page_cache_reads"] == 0 and d["page_cache_misses"] == 0, d'
}

case_refusals() {
    tensors t 10
    mkdir -p outside && ln -s ../outside root/link
    serve d
    for name in ../t /etc a/../../t link nothere; do
        ! consume --socket "$WORK/d.sock" --dataset "$name" 2>err || fail "$name accepted"
        grep -q "$name\|dataset" err || { cat err >&2; fail "no message for $name"; }
    done
    ! consume --socket "$WORK/d.sock" --dataset t --fields nope 2>err || fail "unknown field"
    grep -q "no field 'nope'" err || fail "unknown field message"
    ! consume --socket "$WORK/d.sock" --dataset t --batch-size 64 --world-size 4 --drop-last 2>err || fail "empty epochs accepted"
    ! "$TP" serve --root root --socket "$WORK/d.sock" 2>err || fail "second daemon on a live socket"
    grep -q "already serves" err || fail "live socket message"
    ! consume --socket "$WORK/none.sock" --dataset t 2>err || fail "no daemon"
    grep -q "no daemon" err || fail "no daemon message"
}

case_bad_lmdb() { # a corrupt LMDB shard that would kill liblmdb fails the session, not the daemon
    tensors t 10
    "$TP" gen tensors root/l --samples 30 --shape 4x4x1 --format lmdb >/dev/null
    local shard; shard=$(ls root/l/*.mdb | head -1)
    # both meta pages state a page size of 0 (mm_dbs[0].md_pad)
    printf '\0\0\0\0' | dd of="$shard" bs=1 seek=40 conv=notrunc status=none
    printf '\0\0\0\0' | dd of="$shard" bs=1 seek=4136 conv=notrunc status=none
    serve d
    ! consume --socket "$WORK/d.sock" --dataset l 2>err || fail "corrupt LMDB shard served"
    grep -q "${shard##*/}: corrupt LMDB shard: reading its pages killed the checking process" err ||
        { cat err >&2; fail "no message naming the shard"; }
    kill -0 "${PIDS[-1]}" || fail "the daemon died"
    consume --socket "$WORK/d.sock" --dataset t --batch-size 5 --json >out || fail "daemon stopped serving"
}

case_kill_client() {
    "$TP" gen tensors root/t --samples 4000 --shape 64x64x3 >/dev/null
    serve d
    "$TP" consume --socket "$WORK/d.sock" --dataset t --batch-size 16 --epochs 1000 >/dev/null &
    local c=$!
    sleep 1; kill -9 "$c"; wait "$c" 2>/dev/null || true
    consume --socket "$WORK/d.sock" --dataset t --batch-size 16 --json >out || fail "daemon stopped serving"
    for _ in $(seq 100); do
        "$TP" stat --socket "$WORK/d.sock" --json >stat
        python3 -c 'import json,sys; d=json.load(open("stat")); sys.exit(0 if not d["sessions"] and d["memory_used"] == d["idle_ring_bytes"] and d["idle_rings"] == 1 else 1)' && return 0
        sleep 0.1
    done
    cat stat >&2; fail "the killed client's session was not freed"
}

case_kill_daemon() {
    "$TP" gen tensors root/t --samples 4000 --shape 64x64x3 >/dev/null
    serve d
    local daemon=${PIDS[-1]}
    (rc=0; consume --socket "$WORK/d.sock" --dataset t --batch-size 16 --epochs 1000 2>err ||
        rc=$?; echo "$rc" >rc) &
    sleep 1; kill -9 "$daemon"
    for _ in $(seq 150); do [ -f rc ] && break; sleep 0.1; done
    [ -f rc ] || fail "the client hangs after the daemon died"
    [ "$(cat rc)" = 1 ] || fail "client exit status $(cat rc)"
    grep -q "daemon" err || { cat err >&2; fail "no message about the daemon"; }
}

case_restart() { # daemon SIGKILLed mid-epoch, restarted; each rank resumes where it stopped
    tensors t 300
    serve d
    local r o=(--socket "$WORK/d.sock" --dataset t --batch-size 4 --seed 9 --world-size 2)
    for r in 0 1; do consume "${o[@]}" --rank "$r" --epochs 2 --print-ids >"full.$r"; done
    # 150 samples per rank in batches of 4: 38 batches an epoch, at least 20 ms each here
    for r in 0 1; do
        (rc=0; consume "${o[@]}" --rank "$r" --epochs 2 --print-ids --step-ms 20 \
            >"part1.$r" 2>"err.$r" || rc=$?; echo "$rc" >"rc.$r.tmp"; mv "rc.$r.tmp" "rc.$r") &
    done
    sleep 0.5; kill -9 "${PIDS[-1]}"
    for r in 0 1; do
        for _ in $(seq 150); do [ -f "rc.$r" ] && break; sleep 0.1; done
        [ "$(cat "rc.$r" 2>/dev/null)" = 1 ] || fail "rank $r: exit status $(cat "rc.$r" 2>/dev/null)"
    done
    serve d # on the dead daemon's socket file, which it replaces
    for _ in $(seq 200); do "$TP" stat --socket "$WORK/d.sock" >/dev/null 2>&1 && break; sleep 0.02; done
    for r in 0 1; do
        read -r e k < <(sed -n 's/.*resume with --start-epoch \([0-9]*\) --start-batch \([0-9]*\).*/\1 \2/p' "err.$r")
        [ -n "$e" ] || { cat "err.$r" >&2; fail "rank $r: no resume point in the error"; }
        local done=$(( $(wc -l <"part1.$r") )) all=$(( $(wc -l <"full.$r") ))
        [ "$done" -gt 0 ] && [ "$done" -lt "$all" ] || fail "rank $r: killed outside the run ($done of $all)"
        consume "${o[@]}" --rank "$r" --start-epoch "$e" --start-batch "$k" \
            --batches $((2 * 38 - e * 38 - k)) --print-ids >"part2.$r" || fail "rank $r: resume"
        cat "part1.$r" "part2.$r" | cmp -s - "full.$r" ||
            fail "rank $r: resumed at $e/$k, samples repeated or lost"
    done
}

# as UID GID GROUPS CMD...: runs CMD as another user (GROUPS: its supplementary groups).
as() { local u=$1 g=$2 groups=$3; shift 3; setpriv --reuid="$u" --regid="$g" --groups="$groups" "$@"; }

case_peers() { # who may connect: the socket's mode, then the daemon's own check of each peer
    { [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; } ||
        { echo "skipping: needs root and setpriv to act as other users" >&2; exit 77; }
    chmod 755 "$WORK"
    # A copy the other users can run wherever the build directory is (it links only
    # system libraries).
    install -m 755 "$TP" "$WORK/tp"
    as 65534 65534 65534 "$WORK/tp" --version >/dev/null 2>&1 ||
        { echo "skipping: user 65534 cannot run $WORK/tp" >&2; exit 77; }
    tensors t 20
    local c=(consume --no-autostart --dataset t --batch-size 5 --json)
    serve d # the default: 0660, owner and group root, so the file system refuses others
    ! as 65534 65534 65534 "$WORK/tp" "${c[@]}" --socket "$WORK/d.sock" 2>err || fail "other user got in"
    grep -q "ermission denied" err || { cat err >&2; fail "no reason for the refusal"; }
    serve m --socket-mode 0666 # anyone may connect: the daemon refuses who is not its own
    [ "$(stat -c %a m.sock)" = 666 ] || fail "--socket-mode ignored"
    ! as 65534 65534 65534 "$WORK/tp" "${c[@]}" --socket "$WORK/m.sock" 2>err || fail "daemon let 65534 in"
    grep -q "user 65534 is not allowed by this daemon" err || { cat err >&2; fail "refusal message"; }
    grep -q "refused a client: pid [0-9]*, uid 65534" m.log || { cat m.log >&2; fail "refusal not logged"; }
    ! as 65534 65534 65534 "$WORK/tp" stat --socket "$WORK/m.sock" 2>err || fail "stat let 65534 in"
    grep -q "user 65534 is not allowed by this daemon" err || { cat err >&2; fail "stat refusal message"; }
    serve u --allow-user nobody,65530
    [ "$(stat -c %a u.sock)" = 666 ] || fail "an allow list should open the socket to all"
    as 65534 65534 65534 "$WORK/tp" "${c[@]}" --socket "$WORK/u.sock" >out || fail "allowed user refused"
    grep -q '"samples": 20' out || { cat out >&2; fail "allowed user got no epoch"; }
    ! as 65533 65533 65533 "$WORK/tp" "${c[@]}" --socket "$WORK/u.sock" 2>err || fail "unlisted user let in"
    grep -q "not in its --allow-user or --allow-group lists" err || { cat err >&2; fail "list message"; }
    "$TP" "${c[@]}" --socket "$WORK/u.sock" >/dev/null || fail "the daemon's own user refused"
    serve g --allow-group 4242
    as 65533 65533 4242 "$WORK/tp" "${c[@]}" --socket "$WORK/g.sock" >/dev/null ||
        fail "supplementary group member refused"
    as 65533 4242 65533 "$WORK/tp" "${c[@]}" --socket "$WORK/g.sock" >/dev/null || fail "primary group member refused"
    ! as 65533 65533 65533 "$WORK/tp" "${c[@]}" --socket "$WORK/g.sock" 2>/dev/null || fail "non-member let in"
    ! "$TP" serve --root root --socket "$WORK/x.sock" --allow-user no-such-user-here 2>err ||
        fail "unknown user accepted"
    grep -q "no user named 'no-such-user-here'" err || { cat err >&2; fail "unknown user message"; }
}

case_sigterm() {
    tensors t 10
    serve d
    local daemon=${PIDS[-1]}
    kill -TERM "$daemon"
    for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.05; done
    ! kill -0 "$daemon" 2>/dev/null || fail "SIGTERM did not stop the daemon"
    wait "$daemon" || fail "daemon exit status $?"
    [ ! -e d.sock ] || fail "socket left behind"
}

case_autostart() {
    tensors t 30
    TURBOPUMP_BIN="$TP" "$TP" consume --socket "$WORK/none.sock" --dataset root/t \
        --batch-size 10 --json >out || fail "no private daemon"
    python3 -c 'import json; d=json.load(open("out")); assert d["samples"] == 30, d'
    sleep 0.5
    ! pgrep -f "turbopump-$$" >/dev/null || true
    ! pgrep -f "serve --root $WORK/root .*--private" >/dev/null || fail "private daemon outlived its client"
}

case_install() { # the installed library, found by pkg-config and by CMake, used by a program
    local build=${TP_BUILD_DIR:?set TP_BUILD_DIR to the build directory}
    local src=${TP_SOURCE_DIR:?set TP_SOURCE_DIR to the source directory}
    if grep -q '^TP_SANITIZE:STRING=.' "$build/CMakeCache.txt"; then
        echo "a sanitizer build: its library needs the sanitizer runtime; skipped" >&2
        exit 77
    fi
    cmake --install "$build" --prefix "$WORK/prefix" >/dev/null
    local pc=$(dirname "$(find "$WORK/prefix" -name turbopump.pc)")
    cc "$src/examples/first_batch.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs turbopump) \
        -Wl,-rpath,"$(cd "$pc/.." && pwd)" -o first_batch || fail "pkg-config build"
    mkdir cm && cat >cm/CMakeLists.txt <<EOF2
cmake_minimum_required(VERSION 3.16)
project(first_batch C)
find_package(turbopump REQUIRED)
add_executable(first_batch_static $src/examples/first_batch.c)
target_link_libraries(first_batch_static PRIVATE turbopump::turbopump_static)
EOF2
    cmake -S cm -B cm/b -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null && cmake --build cm/b >/dev/null ||
        fail "find_package build"
    tensors t 20
    serve d
    ./first_batch "$WORK/d.sock" t >out || fail "first_batch (shared)"
    grep -q "8 samples" out || { cat out >&2; fail "no batch"; }
    cm/b/first_batch_static "$WORK/d.sock" t >out2 || fail "first_batch (static)"
    cmp -s out out2 || fail "shared and static builds differ"
}

"case_${1:?usage: service.sh CASE}"
echo "PASS: $1"
