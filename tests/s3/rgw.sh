#!/usr/bin/env bash
# A throwaway S3 endpoint for the tests: a one-node Ceph cluster (one monitor, one manager
# where installed, one OSD on memstore) and its RADOS Gateway on loopback, all under DIR,
# no systemd, no disks.
#
#   tests/s3/rgw.sh start DIR      start it; writes DIR/env (AWS_* variables to source)
#   tests/s3/rgw.sh stop DIR       stop every daemon it started (by pid) and remove DIR
#   tests/s3/rgw.sh kill-gateway DIR / start-gateway DIR
#                                  stop or start the gateway alone (objects stay: they
#                                  live in the OSD)
#
# `start` exits 77 with the reason on stderr where the cluster cannot run (Ceph not
# installed and not installable, a daemon that does not come up); the test that called it
# then reports itself skipped.
set -euo pipefail

cmd=${1:?usage: rgw.sh start|stop|kill-gateway|start-gateway DIR}
dir=${2:?usage: rgw.sh $cmd DIR}
skip() { echo "rgw.sh: $*" >&2; exit 77; }
conf=$dir/ceph.conf

# A free TCP port on loopback.
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  return 1
}

wait_for() { # seconds command...
  local t=$1
  shift
  for _ in $(seq $((t * 10))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  return 1
}

start_gateway() {
  # shellcheck disable=SC1091
  . "$dir/env"
  radosgw -c "$conf" -n client.rgw.a -f >>"$dir/log/rgw.out" 2>&1 &
  echo $! >"$dir/run/rgw.pid"
  wait_for 60 curl -sf -o /dev/null "$AWS_ENDPOINT_URL/" ||
    { tail -5 "$dir/log/"client.rgw.a.log >&2 2>/dev/null || true; return 1; }
}

# The ceph tool retries for ever when it cannot reach the monitor: bound every call.
ceph_() { timeout 20 ceph -c "$conf" --connect-timeout 10 "$@"; }

kill_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case $cmd in
start)
  if ! command -v radosgw >/dev/null || ! command -v ceph-osd >/dev/null; then
    [ "$(id -u)" -eq 0 ] || skip "Ceph is not installed (radosgw, ceph-osd, ceph-mon) and this is not root"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ceph-mon ceph-osd ceph-mgr radosgw ceph-common >/dev/null 2>&1 ||
      skip "cannot install Ceph (apt-get install ceph-mon ceph-osd radosgw failed)"
  fi
  command -v curl >/dev/null || skip "curl is not installed"
  for d in rgw osd mgr mon; do kill_pidfile "$dir/run/$d.pid"; done # a cluster left there
  rm -rf "$dir"
  mkdir -p "$dir"/{run,log,mon,osd/ceph-0,rgw}
  mon_port=$(free_port) && rgw_port=$(free_port) || skip "no free port on loopback"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
ms bind msgr2 = false
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
mon data = $dir/mon/\$cluster-\$id
osd data = $dir/osd/\$cluster-\$id
mgr data = $dir/mgr/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 2147483648
osd max object size = 134217728
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
EOF
  monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs.out" 2>&1 ||
    skip "ceph-mon --mkfs failed: $(tail -1 "$dir/log/mkfs.out")"
  ceph-mon -c "$conf" -i a -f >>"$dir/log/mon.out" 2>&1 &
  echo $! >"$dir/run/mon.pid"
  wait_for 30 timeout 5 ceph -c "$conf" mon stat || skip "the monitor did not come up"
  if command -v ceph-mgr >/dev/null; then
    mkdir -p "$dir/mgr/ceph-a"
    ceph-mgr -c "$conf" -i a -f >>"$dir/log/mgr.out" 2>&1 &
    echo $! >"$dir/run/mgr.pid"
  fi
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph_ osd new "$osd_uuid" >/dev/null || skip "ceph osd new failed"
  ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 ||
    skip "ceph-osd --mkfs failed: $(tail -1 "$dir/log/osd-mkfs.out")"
  ceph-osd -c "$conf" -i 0 -f >>"$dir/log/osd.out" 2>&1 &
  echo $! >"$dir/run/osd.pid"
  wait_for 60 sh -c "timeout 5 ceph -c '$conf' osd stat | grep -q '1 up'" || skip "the OSD did not come up"
  key=$(head -c 15 /dev/urandom | od -An -tx1 | tr -d ' \n' | cut -c1-20 | tr a-f A-F)
  secret=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-40)
  cat >"$dir/env" <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$rgw_port
export AWS_ACCESS_KEY_ID=$key
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
EOF
  start_gateway || skip "the gateway did not come up"
  radosgw-admin -c "$conf" user create --uid=tp --display-name=tp --access-key="$key" \
    --secret-key="$secret" >"$dir/log/user.out" 2>&1 ||
    skip "radosgw-admin user create failed: $(tail -1 "$dir/log/user.out")"
  ;;
stop)
  for d in rgw osd mgr mon; do kill_pidfile "$dir/run/$d.pid"; done
  rm -rf "$dir"
  ;;
kill-gateway)
  kill_pidfile "$dir/run/rgw.pid"
  ;;
start-gateway)
  start_gateway || { echo "rgw.sh: the gateway did not come back" >&2; exit 1; }
  ;;
*)
  echo "rgw.sh: unknown command $cmd" >&2
  exit 2
  ;;
esac
