#!/usr/bin/env bash
# Object-storage integration tests against a real S3 server: `s3.sh CASE` uses the Ceph
# RADOS Gateway that `s3.sh start` (the CTest fixture) runs under $TP_S3_DIR
# (tests/s3/rgw.sh), in a bucket of its own, with daemons and consumers as separate
# processes in a scratch directory removed afterwards. Exit 0 pass, 1 fail, 77 skip
# (no gateway: its reason is in $TP_S3_DIR.skip).
set -euo pipefail

TP=${TURBOPUMP:?set TURBOPUMP to the turbopump binary}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GW=${TP_S3_DIR:?set TP_S3_DIR to the gateway directory}
case ${1:-} in
start)
  rm -f "$GW.skip"
  rc=0
  "$HERE/../s3/rgw.sh" start "$GW" 2>"$GW.err" || rc=$?
  if [ "$rc" = 77 ] && command -v radosgw >/dev/null; then # once more: a port taken, say
    cat "$GW.err" >&2
    rc=0
    "$HERE/../s3/rgw.sh" start "$GW" 2>"$GW.err" || rc=$?
  fi
  [ "$rc" = 77 ] && cp "$GW.err" "$GW.skip"
  cat "$GW.err" >&2
  exit "$rc"
  ;;
stop)
  "$HERE/../s3/rgw.sh" stop "$GW"
  rm -f "$GW.skip" "$GW.err"
  exit 0
  ;;
esac
if [ ! -f "$GW/env" ]; then
  echo "skip: no gateway: $(cat "$GW.skip" 2>/dev/null || echo "s3.start did not run")" >&2
  exit 77
fi
# shellcheck disable=SC1091
. "$GW/env"
. "$HERE/scratch.sh"
scratch_dir tp-s3
export TURBOPUMP_BIN=$TP
BUCKET=t-$1-$$
BUCKET=${BUCKET//_/-}
S3=s3://$BUCKET

# s3curl ARGS...: a signed request with curl (to make buckets and look at objects).
s3curl() {
  curl -s --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}
s3curl -f -X PUT "$AWS_ENDPOINT_URL/$BUCKET" >/dev/null || fail "cannot create bucket $BUCKET"
# exists KEY: whether the object is there
exists() { [ "$(s3curl -o /dev/null -w '%{http_code}' -I "$AWS_ENDPOINT_URL/$BUCKET/$1")" = 200 ]; }

# launch NAME ROOT [OPTIONS]: a daemon on NAME.sock serving ROOT, its errors in NAME.log.
# @return : 1 when it exited (or did not make its socket) instead.
launch() {
  local name=$1 root=$2 pid
  shift 2
  "$TP" serve --root "$root" --socket "$WORK/$name.sock" --threads 2 "$@" 2>"$name.log" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 300); do
    [ -S "$WORK/$name.sock" ] && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}
# serve NAME ROOT [OPTIONS]: launch, or fail the test.
serve() {
  launch "$@" && return 0
  cat "$1.log" >&2
  fail "daemon $1 did not start"
}
# serve_metrics NAME ROOT [OPTIONS]: serve, with metrics on a free loopback port ($MPORT).
# Another test can take the port between the probe and the daemon's bind; then the daemon
# exits naming it, and another port is tried.
serve_metrics() {
  for _ in 1 2 3 4 5; do
    MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    launch "$@" --metrics "$MPORT" && return 0
    grep -q "in use" "$1.log" || break
  done
  cat "$1.log" >&2
  fail "daemon $1 did not start"
}
consume() { "$TP" consume --no-autostart "$@"; }
images() { "$TP" gen imagefolder "$1" --samples "$2" --classes 3 --seed 4 >/dev/null; }
# no_secret FILE...: the secret key appears in none of them
no_secret() {
  if grep -l -F -e "$AWS_SECRET_ACCESS_KEY" "$@" 2>/dev/null; then
    fail "the secret key appears in the files above"
  fi
}

# Every sample's bytes, decoded and raw, equal the local dataset's; inspect and verify
# read the store; the errors users meet name what and where, and never the secret.
case_read() {
  images img 120
  "$TP" pack img root/img --shard-size 1M --quiet
  "$TP" pack img "$S3/img" --shard-size 1M >pack.out 2>&1 || { cat pack.out; fail "pack to s3"; }
  "$TP" gen tensors root/raw --samples 300 --shape 32x32x3 --classes 4 >/dev/null
  "$TP" merge root/raw "$S3/raw" >merge.out 2>&1 || { cat merge.out; fail "merge to s3"; }
  "$TP" inspect "$S3/img" >inspect.out || fail "inspect"
  grep -q "samples:  120" inspect.out || fail "inspect: $(cat inspect.out)"
  "$TP" verify --decode "$S3/img" >verify.out 2>&1 || { cat verify.out; fail "verify"; }
  grep -q "0 problems" verify.out || fail "verify: $(cat verify.out)"
  serve local root
  serve remote "$S3"
  for ds in img raw; do
    for w in local remote; do
      consume --socket "$WORK/$w.sock" --dataset "$ds" --epochs 2 --batch-size 16 --seed 3 \
        --digest >"$ds.$w"
    done
    [ -s "$ds.local" ] || fail "$ds: no batches"
    cmp "$ds.local" "$ds.remote" || fail "$ds: batches differ from the local dataset's"
  done
  # a token dataset: windows from the store equal the local ones
  python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000)' >tok.bin
  "$TP" pack --tokens tok.bin root/tok --dtype uint16 --quiet
  "$TP" pack --tokens tok.bin "$S3/tok" --dtype uint16 --quiet || fail "pack --tokens to s3"
  "$TP" verify "$S3/tok" >tverify.out 2>&1 || { cat tverify.out; fail "verify tokens"; }
  for w in local remote; do
    consume --socket "$WORK/$w.sock" --dataset tok --seq-len 512 --batch-size 4 --seed 2 \
      --digest >"tok.$w"
  done
  [ -s tok.local ] || fail "tokens: no batches"
  cmp tok.local tok.remote || fail "token windows differ from the local dataset's"
  # raw samples in dataset order, every field, each batch
  for w in local remote; do
    consume --socket "$WORK/$w.sock" --dataset raw --no-shuffle --batch-size 7 --digest >"order.$w"
  done
  cmp order.local order.remote || fail "raw tensors in order differ"
  # errors
  "$TP" inspect "$S3/nothing" >err1 2>&1 && fail "a missing dataset opened"
  grep -q "s3://$BUCKET/nothing: not a dataset (no manifest.json)" err1 || fail "missing: $(cat err1)"
  AWS_SECRET_ACCESS_KEY=wrong-$AWS_SECRET_ACCESS_KEY "$TP" inspect "$S3/img" >err2 2>&1 &&
    fail "a wrong secret was accepted"
  grep -q "HTTP 403" err2 || fail "wrong secret: $(cat err2)"
  "$TP" pack img "$S3/img" >err3 2>&1 && fail "pack replaced a dataset without --force"
  grep -q "already a dataset" err3 || fail "existing: $(cat err3)"
  "$TP" pack img "$S3/lmdb" --format lmdb >err4 2>&1 && fail "LMDB to object storage"
  grep -q "LMDB shards cannot be written to object storage" err4 || fail "lmdb: $(cat err4)"
  AWS_ENDPOINT_URL=http://127.0.0.1:1 AWS_MAX_ATTEMPTS=2 "$TP" inspect "$S3/img" >err5 2>&1 &&
    fail "no server, and it opened"
  grep -q "s3://$BUCKET/img/manifest.json: GET: Couldn't connect" err5 || fail "down: $(cat err5)"
  no_secret ./*.out err* ./*.log
}

# Three ranks reading one bucket see every sample once per epoch, as from local disk.
case_exact_once() {
  "$TP" gen tensors root/t --samples 101 --shape 4x4x1 --classes 5 >/dev/null
  "$TP" merge root/t "$S3/t" >/dev/null
  serve d "$S3"
  for r in 0 1 2; do
    consume --socket "$WORK/d.sock" --dataset t --batch-size 4 --epochs 2 --seed 9 \
      --world-size 3 --rank $r --print-ids >"ids.$r" &
  done
  wait_consumers
  cat ids.* | python3 -c '
import collections, sys
seen = collections.defaultdict(collections.Counter)
for line in sys.stdin:
    e, i = map(int, line.split())
    seen[e][i] += 1
assert sorted(seen) == [0, 1], sorted(seen)
for e, c in seen.items():
    assert len(c) == 101 and sum(c.values()) == 3 * 34, (e, len(c), sum(c.values()))
' || fail "ranks did not cover each epoch exactly"
}

wait_consumers() {
  local p
  for p in $(jobs -p | grep -v -x -F "$(printf '%s\n' "${PIDS[@]}")" || true); do
    wait "$p" || fail "a consumer failed"
  done
}

# proxy OPTIONS...: starts tests/s3/faulty_proxy.py in front of the gateway; sets PROXY.
proxy() {
  rm -f proxy.port
  python3 "$HERE/../s3/faulty_proxy.py" --upstream "$AWS_ENDPOINT_URL" --port-file proxy.port \
    --log faults.log "$@" &
  PIDS+=($!)
  for _ in $(seq 200); do [ -s proxy.port ] && break; sleep 0.05; done
  [ -s proxy.port ] || fail "the proxy did not start"
  PROXY=http://127.0.0.1:$(cat proxy.port)
}

# 5xx, resets, slow answers and bodies cut short: every read still gives the same bytes.
case_faults() {
  images img 60
  "$TP" pack img "$S3/img" --shard-size 1M --quiet
  "$TP" gen tensors root/raw --samples 200 --shape 32x32x3 >/dev/null
  "$TP" merge root/raw "$S3/raw" >/dev/null
  serve clean "$S3"
  proxy --fail-every 7 --reset-every 11 --truncate-every 5 --slow-every 13 --slow-seconds 1
  # 22% of all GETs fail without a byte (every 7th, every 11th). Retries of many reads in
  # flight land on counts the proxy's others have advanced, so the tries of one read are
  # about independent: with the default 5 a read of the few hundred here fails now and then
  # (0.22^5 each, seen on a loaded machine); 10 tries put that at 3e-7.
  AWS_ENDPOINT_URL=$PROXY AWS_MAX_ATTEMPTS=10 serve faulty "$S3"
  for ds in img raw; do
    for w in clean faulty; do
      consume --socket "$WORK/$w.sock" --dataset "$ds" --epochs 2 --batch-size 16 --seed 2 \
        --digest >"$ds.$w" || fail "$ds through faults"
    done
    cmp "$ds.clean" "$ds.faulty" || fail "$ds: bytes differ through faults"
  done
  for kind in fail reset truncate slow; do
    grep -q "^$kind " faults.log || fail "no '$kind' fault was injected"
  done
  AWS_ENDPOINT_URL=$PROXY AWS_MAX_ATTEMPTS=8 "$TP" verify "$S3/img" >verify.out 2>&1 ||
    { cat verify.out; fail "verify through faults"; }
  # a read that fails on every try names the sample, and the session says where to resume
  rm -f proxy.port
  proxy --fail-every 1 --after 6 # the dataset opens (4 GETs), then every read fails
  AWS_ENDPOINT_URL=$PROXY AWS_MAX_ATTEMPTS=2 serve broken "$S3"
  consume --socket "$WORK/broken.sock" --dataset raw --batch-size 16 >broken.out 2>&1 &&
    fail "every GET failed and the epoch completed"
  grep -q "sample" broken.out && grep -q "resume with --start-epoch" broken.out ||
    fail "the failure does not name the sample: $(cat broken.out)"
  grep -q "object storage failed every try" broken.out ||
    fail "the failure does not say the store failed every try: $(cat broken.out)"
  no_secret ./*.out ./*.log faults.log
}

# The gateway killed mid-epoch and started again: the epoch completes with the same bytes;
# down for longer than the retries, the session fails naming the sample, and resuming
# where it says gives exactly the rest.
case_gateway_restart() {
  "$TP" gen tensors root/raw --samples 400 --shape 32x32x3 >/dev/null
  "$TP" merge root/raw "$S3/raw" >/dev/null
  serve ref root
  consume --socket "$WORK/ref.sock" --dataset raw --epochs 4 --batch-size 8 --seed 1 \
    --digest >ref.dig
  AWS_MAX_ATTEMPTS=30 serve patient "$S3"
  consume --socket "$WORK/patient.sock" --dataset raw --epochs 2 --batch-size 8 --seed 1 \
    --step-ms 20 --prefetch 2 --digest >patient.dig &
  local c=$!
  sleep 1
  "$HERE/../s3/rgw.sh" kill-gateway "$GW"
  sleep 3
  "$HERE/../s3/rgw.sh" start-gateway "$GW" || fail "the gateway did not come back"
  wait $c || fail "the epoch did not complete across a gateway restart"
  head -n "$(wc -l <patient.dig)" ref.dig >want.patient
  [ "$(wc -l <patient.dig)" = 100 ] || fail "$(wc -l <patient.dig) batches, want 100"
  cmp want.patient patient.dig || fail "bytes differ across a gateway restart"
  # down for good (two tries): the consumer fails and says where to resume
  AWS_MAX_ATTEMPTS=2 serve impatient "$S3"
  consume --socket "$WORK/impatient.sock" --dataset raw --epochs 2 --batch-size 8 --seed 1 \
    --step-ms 20 --prefetch 2 --digest >first.dig 2>first.err &
  c=$!
  sleep 1
  "$HERE/../s3/rgw.sh" kill-gateway "$GW"
  wait $c && fail "the epoch completed with the gateway down"
  "$HERE/../s3/rgw.sh" start-gateway "$GW" || fail "the gateway did not come back"
  grep -q "sample" first.err || fail "the failure does not name the sample: $(cat first.err)"
  local resume
  resume=$(sed -n 's/.*resume with \(--start-epoch [0-9]* --start-batch [0-9]*\).*/\1/p' first.err)
  [ -n "$resume" ] || fail "no resume position: $(cat first.err)"
  # shellcheck disable=SC2086
  consume --socket "$WORK/impatient.sock" --dataset raw --epochs 2 --batch-size 8 --seed 1 \
    $resume --digest >rest.dig || fail "resume after the gateway came back"
  local e b
  read -r e b <<<"$(echo "$resume" | awk '{print $2, $4}')"
  awk -v e="$e" -v b="$b" '$1 < e || ($1 == e && $2 < b)' ref.dig >want.first
  awk -v e="$e" -v b="$b" '$1 > e || ($1 == e && $2 >= b)' ref.dig | head -n "$(wc -l <rest.dig)" >want.rest
  cmp first.dig want.first || fail "batches before the failure differ from the reference"
  cmp rest.dig want.rest || fail "the resumed batches are not exactly the rest"
}

# The cache: the same bytes from it, never more on disk than its bound, hits on the second
# epoch, damaged ranges read again from the store.
case_cache() {
  "$TP" gen tensors root/raw --samples 300 --shape 64x64x3 >/dev/null # ~3.7 MB
  "$TP" merge root/raw "$S3/raw" >/dev/null
  serve ref root
  consume --socket "$WORK/ref.sock" --dataset raw --epochs 3 --batch-size 10 --seed 1 \
    --digest >ref.dig
  serve_metrics big "$S3" --cache big.cache --cache-size 64M
  local port=$MPORT
  consume --socket "$WORK/big.sock" --dataset raw --epochs 3 --batch-size 10 --seed 1 \
    --digest >big.dig
  cmp ref.dig big.dig || fail "bytes differ through the cache"
  # every record is in the cache now: a second session reads all of its 600 from it (in
  # the first, a record read at an epoch's end can still be in flight when the next epoch
  # reads it again, and that read goes to the store)
  metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
  local hits misses
  hits=$(metric turbopump_s3_cache_hits_total); misses=$(metric turbopump_s3_cache_misses_total)
  # (at most the 4 batches of 10 the daemon prepares ahead, at each of the two epoch edges)
  [ "${hits:-0}" -ge 520 ] || fail "only ${hits:-0} cache hits in epochs 2 and 3 (want 520)"
  consume --socket "$WORK/big.sock" --dataset raw --epochs 2 --batch-size 10 --seed 1 \
    --digest >again.dig
  head -n "$(wc -l <again.dig)" ref.dig | cmp - again.dig || fail "bytes differ from the cache"
  local h2 m2
  h2=$(metric turbopump_s3_cache_hits_total); m2=$(metric turbopump_s3_cache_misses_total)
  [ "$((h2 - hits))" -eq 600 ] && [ "$m2" = "$misses" ] ||
    fail "a warm cache gave $((h2 - hits)) hits and $((m2 - misses)) misses for 600 reads"
  # damage every cached range: the reads notice and go to the store
  for f in big.cache/turbopump-cache-*.bin; do
    python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(8192); f.write(b"\xff" * 4096)' "$f"
  done
  consume --socket "$WORK/big.sock" --dataset raw --epochs 3 --batch-size 10 --seed 1 \
    --digest >damaged.dig
  cmp ref.dig damaged.dig || fail "damaged cache ranges were served"
  # a bound of 1 MiB: always within it, on disk (allocated blocks)
  serve small "$S3" --cache small.cache --cache-size 1M
  consume --socket "$WORK/small.sock" --dataset raw --epochs 2 --batch-size 10 --seed 1 \
    --step-ms 1 --digest >small.dig &
  local c=$! most=0 now
  while kill -0 $c 2>/dev/null; do
    # blocks allocated to the cache's files (the directory is made at the session's start)
    now=$(find small.cache -name '*.bin' -printf '%b\n' 2>/dev/null | awk '{s += $1 * 512} END {print s + 0}' || true)
    [ "${now:-0}" -gt "$most" ] && most=$now
    sleep 0.05
  done
  wait $c || fail "consumer with a small cache"
  head -n "$(wc -l <small.dig)" ref.dig | cmp - small.dig || fail "bytes differ with a small cache"
  [ "$most" -le $((1 << 20)) ] || fail "the cache held $most bytes, above its 1 MiB bound"
  [ "$most" -gt 0 ] || fail "the small cache held nothing"
  "$TP" serve --root "$S3" --socket "$WORK/x.sock" --cache big.cache --cache-size 1M \
    >busy.out 2>&1 &
  PIDS+=($!)
  sleep 1
  consume --socket "$WORK/x.sock" --dataset raw --batches 1 >busy2.out 2>&1 &&
    fail "two daemons shared one cache directory"
  grep -q "in use by another daemon" busy.out busy2.out || fail "busy cache: $(cat busy.out busy2.out)"
}

# pack and merge into the store: the manifest last, nothing left by a failed upload, a
# killed pack leaves no dataset, --force replaces, parts in the store are copied there.
case_pack() {
  images img 80
  "$TP" pack img root/img --shard-size 512K --quiet
  "$TP" pack img "$S3/img" --shard-size 512K --quiet || fail "pack"
  "$TP" pack img "$S3/img" --shard-size 2M --force --quiet || fail "pack --force"
  "$TP" verify "$S3/img" | grep -q "80 samples in" || fail "the replaced dataset"
  "$TP" merge root/img "$S3/img" "$S3/both" >merge.out 2>&1 || { cat merge.out; fail "merge"; }
  "$TP" verify "$S3/both" | grep -q "160 samples" || fail "merge: $("$TP" verify "$S3/both" 2>&1)"
  # uploads that fail on every try: an error naming the object, and nothing left behind
  proxy --fail-every 1 --methods PUT,POST
  AWS_ENDPOINT_URL=$PROXY AWS_MAX_ATTEMPTS=2 "$TP" pack img "$S3/failed" --quiet >fail.out 2>&1 &&
    fail "pack succeeded with every upload failing"
  grep -q "s3://$BUCKET/failed/shard-00000.tpr: PUT: HTTP 503" fail.out || fail "upload error: $(cat fail.out)"
  exists failed/manifest.json && fail "a manifest after a failed pack"
  rm -f proxy.port
  # killed while uploading (slow uploads): no dataset appears
  proxy --slow-every 1 --slow-seconds 1 --methods PUT
  AWS_ENDPOINT_URL=$PROXY "$TP" pack img "$S3/killed" --shard-size 256K --quiet >kill.out 2>&1 &
  local p=$!
  sleep 2.5
  kill -9 $p
  wait $p 2>/dev/null || true
  exists killed/shard-00000.tpr || fail "the killed pack had uploaded nothing yet (test too fast)"
  exists killed/manifest.json && fail "a killed pack left a manifest"
  "$TP" inspect "$S3/killed" >killed.out 2>&1 && fail "a killed pack's dataset opened"
  grep -q "not a dataset" killed.out || fail "killed: $(cat killed.out)"
}

"case_$1"
