#!/usr/bin/env bash
# Metrics integration tests: `metrics.sh CASE` starts a daemon with --metrics on a loopback
# port and checks the endpoint from outside: scraped by a real Prometheus server
# (Debian's prometheus package), fed requests that are wrong on purpose, and
# `turbopump stat --watch` beside it. Everything runs in a scratch directory removed
# afterwards; every process started here is killed by pid on exit. Exit 0 pass, 1 fail,
# 77 skip.
set -euo pipefail

TP=${TURBOPUMP:?set TURBOPUMP to the turbopump binary}
PY=/usr/bin/python3 # the system's, whatever python3 comes first on PATH
. "$(dirname "${BASH_SOURCE[0]}")/scratch.sh"
scratch_dir tp-metrics
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# serve: a daemon on d.sock with metrics on 127.0.0.1:$MPORT; DAEMON is its pid.
serve() {
    MPORT=$(free_port)
    "$TP" serve --root root --socket "$WORK/d.sock" --threads 2 \
        --metrics "127.0.0.1:$MPORT" "$@" 2>d.log &
    DAEMON=$!
    PIDS+=("$DAEMON")
    for _ in $(seq 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$MPORT/metrics" && [ -S d.sock ] && return 0
        sleep 0.02
    done
    cat d.log >&2; fail "daemon did not start"
}
consume() { "$TP" consume --no-autostart --socket "$WORK/d.sock" "$@"; }
tensors() { "$TP" gen tensors "root/$1" --samples "$2" --shape 4x4x1 --classes 5 >/dev/null; }
scrape() { curl -sf "http://127.0.0.1:$MPORT/metrics"; }

# prom_samples SINCE: the newest turbopump_samples_total Prometheus scraped after Unix
# time SINCE, or nothing when it has none yet.
prom_samples() {
    curl -sf "http://127.0.0.1:$PPORT/api/v1/query" \
        --data-urlencode 'query=turbopump_samples_total[30s]' |
        "$PY" -c '
import json, sys
since = float(sys.argv[1])
r = json.load(sys.stdin)["data"]["result"]
values = [v for v in (r[0]["values"] if r else []) if float(v[0]) > since]
print(values[-1][1] if values else "")' "$1"
}

# wait_scrape SINCE: waits (at most 15 s) for a scrape after SINCE and prints its value.
wait_scrape() {
    local v
    for _ in $(seq 150); do
        v=$(prom_samples "$1" || true)
        [ -n "$v" ] && { echo "$v"; return 0; }
        sleep 0.1
    done
    fail "Prometheus scraped nothing after $1"
}

case_jpeg_seek() { # the seekable path's counters: regions from their segments, and damage
    "$TP" gen imagefolder img --samples 24 --classes 2 --seed 3 >/dev/null
    "$TP" pack img root/s --jpeg-seek --quiet
    # a JPEG that claims to be seekable but has its first restart marker out of order,
    # stored as it is (pack checks headers, not restart data), beside two sound ones
    mkdir -p bad/c
    "$TP" inspect root/s --sample 0 --field jpg >bad/c/0.jpg
    "$TP" inspect root/s --sample 1 --field jpg >bad/c/1.jpg
    "$TP" inspect root/s --sample 2 --field jpg >bad/c/2.jpg
    "$PY" - bad/c/0.jpg <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
at = data.index(b"\xff\xd0", data.index(b"\xff\xda"))
data[at + 1] = 0xD5
open(sys.argv[1], "wb").write(data)
PY
    "$TP" pack bad root/bad --quiet
    serve --on-error skip
    consume --dataset s --batch-size 8 --seed 1 --json >out
    scrape >m
    grep -q '^turbopump_jpeg_seek_fallbacks_total 0$' m || { grep jpeg_seek m >&2; fail "fallbacks on sound data"; }
    local n; n=$(sed -n 's/^turbopump_jpeg_seek_decodes_total //p' m)
    [ "${n:-0}" -gt 0 ] || { grep jpeg_seek m >&2; fail "no seekable decodes counted"; }
    # the damaged one falls back to the usual decode, which fails it (skipped here; the
    # daemon decodes ahead of the consumer, so it may have tried more than once)
    consume --dataset bad --batch-size 3 --transform center224 --json >out
    "$PY" -c 'import json; d=json.load(open("out")); assert d["samples"] == 2 and d["skipped"] == 1, d'
    scrape >m
    n=$(sed -n 's/^turbopump_jpeg_seek_fallbacks_total //p' m)
    local errors; errors=$(sed -n 's/^turbopump_errors_total //p' m)
    [ "${n:-0}" -gt 0 ] && [ "$n" = "$errors" ] ||
        { grep -E "jpeg_seek|errors" m >&2; fail "fallbacks $n against $errors errors"; }
}

case_prometheus() { # a real Prometheus sees the daemon-wide counter rise by what was read
    command -v prometheus >/dev/null || { echo "SKIP: no prometheus binary"; exit 77; }
    tensors t 103
    serve
    PPORT=$(free_port)
    cat >prom.yml <<EOF
global: {scrape_interval: 1s, scrape_timeout: 900ms}
scrape_configs:
  - job_name: turbopump
    static_configs: [{targets: ['127.0.0.1:$MPORT']}]
EOF
    prometheus --config.file=prom.yml --storage.tsdb.path="$WORK/prom-data" \
        --web.listen-address="127.0.0.1:$PPORT" --log.level=warn 2>prom.log &
    PIDS+=($!)
    local ready=0
    for _ in $(seq 200); do
        curl -sf -o /dev/null "http://127.0.0.1:$PPORT/-/ready" && { ready=1; break; }
        sleep 0.1
    done
    [ "$ready" = 1 ] || { cat prom.log >&2; fail "Prometheus did not start in 20 s"; }
    local before after total=0 n
    before=$(wait_scrape 0)
    # Two consumers, one after the other: each session ends (and disappears from the
    # per-session figures) before the scrape that must still count it. The counter counts
    # the samples of the batches the daemon published; with --batches (two epochs of 13)
    # the daemon publishes no more than the consumer reads, without it a few prefetched.
    for seed in 1 2; do
        n=$(consume --dataset t --batch-size 8 --batches 26 --seed "$seed" --json |
            "$PY" -c 'import json, sys; print(json.load(sys.stdin)["samples"])')
        total=$((total + n))
    done
    [ "$total" = $((2 * 2 * 103)) ] || fail "consumers read $total samples"
    after=$(wait_scrape "$(date +%s.%N)")
    [ "$((after - before))" = "$total" ] ||
        fail "turbopump_samples_total rose by $((after - before)), consumers read $total"
    local up
    up=$(curl -sf "http://127.0.0.1:$PPORT/api/v1/query" --data-urlencode 'query=up' |
         "$PY" -c 'import json, sys; print(json.load(sys.stdin)["data"]["result"][0]["value"][1])')
    [ "$up" = 1 ] || fail "Prometheus says the target is down"
}

case_requests() { # wrong requests get errors; the daemon goes on serving
    tensors t 40
    serve
    "$PY" - "$MPORT" <<'PY' || fail "raw requests"
import socket, sys
port = int(sys.argv[1])

def ask(data, timeout=5):
    """The status of the reply to `data`, or None when the daemon closed the connection
    without one (or said nothing within the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
    except OSError:
        pass  # it may close before a huge request is all sent
    out = b""
    try:
        while b"\r\n" not in out:
            b = s.recv(4096)
            if not b:
                break
            out += b
    except OSError:
        pass
    s.close()
    line = out.split(b"\r\n")[0].split()
    return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") else None

def expect(data, want, name):
    got = ask(data)
    assert got in want, f"{name}: status {got}, wanted {want}"

host = b"Host: 127.0.0.1\r\n"
expect(b"GET /metrics HTTP/1.1\r\n" + host + b"\r\n", {200}, "GET /metrics")
expect(b"POST /metrics HTTP/1.1\r\n" + host + b"Content-Length: 5\r\n\r\nhello", {405}, "POST")
expect(b"DELETE /metrics HTTP/1.1\r\n" + host + b"\r\n", {405}, "DELETE")
expect(b"GET /nothing HTTP/1.1\r\n" + host + b"\r\n", {404}, "unknown path")
expect(b"GET / HTTP/1.1\r\n" + host + b"\r\n", {404}, "root path")
expect(b"GET /metrics HTTP/1.1 extra\r\n" + host + b"\r\n", {400}, "malformed request line")
expect(b"GET /metrics NOTHTTP\r\n" + host + b"\r\n", {400, 505}, "bad version")
expect(b"GARBAGE\r\n\r\n", {None, 400}, "garbage")
expect(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) * 4,
       {None, 400}, "TLS hello")
big = b"X-Big: " + b"a" * (4 << 20) + b"\r\n"
expect(b"GET /metrics HTTP/1.1\r\n" + host + big + b"\r\n", {413, 431, None}, "4 MiB header")
many = b"X-Many: y\r\n" * 300000
expect(b"GET /metrics HTTP/1.1\r\n" + host + many + b"\r\n", {413, 431, None}, "3 MB of headers")
expect(b"GET /" + b"m" * (1 << 20) + b" HTTP/1.1\r\n" + host + b"\r\n", {414, 431, None}, "1 MiB path")
expect(b"POST /metrics HTTP/1.1\r\n" + host + b"Content-Length: 100000000\r\n\r\n" + b"x" * 65536,
       {405, 413, None}, "large body")
expect(b"GET /metrics HTTP/1.1\r\n" + host + b"\r\n", {200}, "GET /metrics afterwards")
PY
    kill -0 "$DAEMON" 2>/dev/null || fail "the daemon died"
    local n
    n=$(consume --dataset t --batch-size 8 --batches 5 --json | # no prefetch past them
        "$PY" -c 'import json, sys; print(json.load(sys.stdin)["samples"])')
    [ "$n" = 40 ] || fail "consume after the requests read $n samples"
    scrape >m || fail "/metrics does not answer after the requests"
    grep -qx 'turbopump_samples_total 40' m || fail "samples_total is not 40: $(grep samples_total m)"
    curl -s -o /dev/null -w '%{content_type}' "http://127.0.0.1:$MPORT/metrics" >ct
    [ "$(cat ct)" = "text/plain; version=0.0.4; charset=utf-8" ] || fail "content type $(cat ct)"
}

case_address() { # loopback only, unless asked
    local p
    p=$(free_port)
    ! "$TP" serve --root root --socket "$WORK/x.sock" --metrics "0.0.0.0:$p" 2>err ||
        fail "a wildcard metrics address was accepted"
    grep -q -- "--metrics-public" err || fail "no hint at --metrics-public: $(cat err)"
    [ ! -e x.sock ] || fail "the refused daemon left its socket"
    ! "$TP" serve --root root --socket "$WORK/x.sock" --metrics "127.0.0.1:99999" 2>err ||
        fail "port 99999 accepted"
    # A port free_port found can be taken by a concurrent test before the daemon binds
    # it; then the daemon exits, and a scrape would reach the other test's daemon. So the
    # daemon must be up (its socket there, its process alive) before the scrape counts.
    local pid up=0
    for _ in 1 2 3 4 5; do
        MPORT=$(free_port)
        "$TP" serve --root root --socket "$WORK/x.sock" --metrics "0.0.0.0:$MPORT" \
            --metrics-public 2>x.log &
        pid=$!
        PIDS+=("$pid")
        for _ in $(seq 200); do
            kill -0 "$pid" 2>/dev/null || break
            [ -S x.sock ] && scrape >/dev/null && { up=1; break; }
            sleep 0.02
        done
        [ "$up" = 1 ] && break
        grep -q "in use" x.log || { cat x.log >&2; fail "--metrics-public daemon did not start"; }
    done
    [ "$up" = 1 ] || fail "no free port for the metrics address in 5 tries"
    # into a file first: with pipefail, grep -q quitting early would fail curl with EPIPE
    scrape > public.txt || fail "--metrics-public: the scrape failed"
    grep -q '^turbopump_samples_total 0$' public.txt || fail "--metrics-public does not serve"
}

case_watch() { # stat --watch: a table a tick, Ctrl-C ends it, so does the daemon's end
    tensors t 40
    serve
    "$TP" stat --socket "$WORK/d.sock" --watch --interval 0.2 >w.out 2>w.err &
    local w=$!
    PIDS+=("$w")
    sleep 1.1
    kill -INT "$w"
    local rc=0
    wait "$w" || rc=$?
    [ "$rc" = 0 ] || fail "stat --watch ended by SIGINT exited $rc: $(cat w.err)"
    [ "$(grep -c '^daemon pid' w.out)" -ge 3 ] || fail "stat --watch printed $(grep -c '^daemon pid' w.out) tables"
    ! grep -q $'\033' w.out || fail "escape codes in output that is not a terminal"
    "$TP" stat --socket "$WORK/d.sock" --watch --interval 0.2 >w.out 2>w.err &
    w=$!
    PIDS+=("$w")
    sleep 0.5
    kill "$DAEMON"
    rc=0
    timeout 5 tail --pid="$w" -f /dev/null || fail "stat --watch outlived the daemon"
    wait "$w" || rc=$?
    [ "$rc" = 1 ] || fail "stat --watch exited $rc when the daemon went away"
    grep -q "daemon went away" w.err || fail "no message: $(cat w.err)"
    ! "$TP" stat --socket "$WORK/d.sock" --watch --interval 0.05 2>/dev/null ||
        fail "--interval 0.05 accepted"
    if command -v script >/dev/null; then # on a terminal: redrawn in place
        serve
        script -qec "timeout -s INT 0.7 '$TP' stat --socket '$WORK/d.sock' --watch --interval 0.2" \
            /dev/null >tty.out </dev/null || true
        grep -q $'\033\\[H' tty.out || fail "no cursor-home escape on a terminal"
    fi
}

"case_${1:?usage: metrics.sh CASE}"
echo "PASS: $1"
