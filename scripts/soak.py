#!/usr/bin/env python3
"""Soak test: one daemon, many clients, many epochs, for a fixed time.

    scripts/soak.py [--minutes 10] [--clients 8] [--build build] [--out DIR]

It generates two datasets (JPEGs and raw tensors), starts `turbopump serve`, and runs
CLIENTS client loops until the time is up. Each loop opens session after session
(`turbopump consume --epochs 2`), alternating datasets, outputs and rank layouts, and
checks each run delivered exactly its share of samples. One loop kills its consumer with
SIGKILL at a random moment of each run instead, so dead clients are part of the load.

Every few seconds it samples the daemon's resident memory, open descriptors, shared
mappings of session rings, sessions and threads, and writes them to DIR/soak.csv. At the
end it prints those figures over time and checks that they stay flat: after the first
minute's warm-up, the last quarter's median RSS within 10% (plus 8 MiB) of the second
quarter's, and descriptors, ring mappings and threads back to their idle values once the
clients stop. Exit status 0 when flat and every run was exact, 1 otherwise.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--build", default=os.path.join(SRC, "build"),
                    help="build directory holding tools/turbopump (built if missing)")
    ap.add_argument("--out", help="directory for soak.csv and logs (default: a temporary one)")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    return ap.parse_args()


def daemon_figures(pid):
    """RSS (KiB), descriptors, ring mappings and threads of the daemon process."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/maps") as f:
        rings = sum(1 for line in f if "turbopump-ring" in line)
    return rss, fds, rings, threads


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.runs = self.killed = self.samples = self.bad = 0
        self.errors = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)

    def error(self, msg):
        with self.lock:
            self.bad += 1
            if len(self.errors) < 20:
                self.errors.append(msg)


def client_loop(n, tp, sock, deadline, totals, sizes, rng):
    """Client `n`: consume runs until the deadline; loop 0 kills its runs instead."""
    killer = n == 0
    k = 0
    while time.monotonic() < deadline:
        k += 1
        ds = "img" if (n + k) % 2 else "ten"
        world = 1 if (n + k) % 3 else 2
        rank = (n + k) % world
        args = [tp, "consume", "--no-autostart", "--socket", sock, "--dataset", ds,
                "--batch-size", "16", "--epochs", "2", "--seed", str(n * 1000 + k),
                "--world-size", str(world), "--rank", str(rank), "--json"]
        if ds == "img":
            args += ["--output", ("uint8", "float32", "float16")[k % 3]]
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if killer:
            time.sleep(rng.uniform(0.05, 1.0))
            p.send_signal(signal.SIGKILL)
            p.communicate()
            totals.add(killed=1)
            continue
        out, err = p.communicate()
        if p.returncode != 0:
            totals.error(f"client {n} run {k}: exit {p.returncode}: {err.strip()}")
            continue
        got = json.loads(out)["samples"]
        want = 2 * -(-sizes[ds] // world)  # each rank's share, padded, per epoch
        if got != want:
            totals.error(f"client {n} run {k}: {got} samples, expected {want}")
        totals.add(runs=1, samples=got)


def main():
    a = parse_args()
    tp = os.path.join(a.build, "tools", "turbopump")
    if not os.access(tp, os.X_OK):
        subprocess.run(["cmake", "-S", SRC, "-B", a.build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                        "-DTP_BUILD_TESTS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", a.build, "-j", str(os.cpu_count())], check=True,
                       stdout=subprocess.DEVNULL)
    out = a.out or tempfile.mkdtemp(prefix="tp-soak-")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tp-soak-work-")
    root = os.path.join(work, "root")
    os.makedirs(root)
    sizes = {"img": 600, "ten": 4000}
    subprocess.run([tp, "gen", "imagefolder", os.path.join(work, "src"), "--samples",
                    str(sizes["img"]), "--classes", "10", "--seed", "3"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([tp, "pack", os.path.join(work, "src"), os.path.join(root, "img"),
                    "--quiet"], check=True)
    subprocess.run([tp, "gen", "tensors", os.path.join(root, "ten"), "--samples",
                    str(sizes["ten"]), "--shape", "32x32x3", "--classes", "10"], check=True,
                   stdout=subprocess.DEVNULL)
    sock = os.path.join(work, "tp.sock")
    log = open(os.path.join(out, "daemon.log"), "w")
    daemon = subprocess.Popen([tp, "serve", "--root", root, "--socket", sock], stderr=log)
    while not os.path.exists(sock):
        if daemon.poll() is not None:
            sys.exit("soak: the daemon did not start; see " + log.name)
        time.sleep(0.02)
    # The daemon keeps a dataset's shards open once a client has used it: one short run
    # on each before taking the idle figures.
    for ds in sizes:
        subprocess.run([tp, "consume", "--no-autostart", "--socket", sock, "--dataset", ds,
                        "--batches", "1"], check=True, stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    idle = daemon_figures(daemon.pid)

    totals = Totals()
    start = time.monotonic()
    deadline = start + a.minutes * 60
    threads = [threading.Thread(target=client_loop, daemon=True,
                                args=(n, tp, sock, deadline, totals, sizes, random.Random(n)))
               for n in range(a.clients)]
    for t in threads:
        t.start()
    rows = []
    csv = open(os.path.join(out, "soak.csv"), "w")
    csv.write("seconds,rss_kib,fds,ring_maps,threads,runs,killed,samples,errors\n")
    print(f"soak: {a.clients} clients for {a.minutes:g} min; idle daemon: RSS "
          f"{idle[0] / 1024:.1f} MiB, {idle[1]} fds, {idle[2]} ring maps, {idle[3]} threads",
          flush=True)
    while any(t.is_alive() for t in threads):
        time.sleep(a.interval)
        if daemon.poll() is not None:
            sys.exit(f"soak: FAIL: the daemon exited with {daemon.returncode}")
        f = daemon_figures(daemon.pid)
        with totals.lock:
            row = (time.monotonic() - start, *f, totals.runs, totals.killed, totals.samples,
                   totals.bad)
        rows.append(row)
        csv.write(",".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in row) + "\n")
        csv.flush()
    for t in threads:
        t.join()
    time.sleep(1.0)  # the last sessions' threads are joined by the daemon's loop
    after = daemon_figures(daemon.pid)
    daemon.send_signal(signal.SIGTERM)
    try:
        rc = daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        rc = "none: still running 30 s after SIGTERM, killed"

    print("\n  minute   RSS MiB (median, max)   fds (max)   ring maps (max)   threads (max)   "
          "runs")
    for m in range(int(a.minutes + 0.999)):
        part = [r for r in rows if m * 60 <= r[0] < (m + 1) * 60]
        if not part:
            continue
        rss = [r[1] / 1024 for r in part]
        print(f"  {m + 1:6d}   {statistics.median(rss):8.1f} {max(rss):8.1f}   "
              f"{max(r[2] for r in part):10d}   {max(r[3] for r in part):15d}   "
              f"{max(r[4] for r in part):13d}   {part[-1][5]:5d}")
    warm = [r for r in rows if r[0] >= 60]
    q = max(1, len(warm) // 4)
    early = statistics.median(r[1] for r in warm[q:2 * q]) if len(warm) >= 4 else None
    late = statistics.median(r[1] for r in warm[-q:]) if len(warm) >= 4 else None
    flat_rss = early is None or late <= early * 1.10 + 8 * 1024
    back = after[1] <= idle[1] and after[2] == 0 and after[3] <= idle[3]
    print(f"\n  runs {totals.runs} exact of {totals.runs + totals.bad}, {totals.killed} killed "
          f"mid-run, {totals.samples} samples")
    if early is None:
        print("  RSS trend not judged: too few samples after the first minute")
    else:
        print(f"  RSS after warm-up: {early / 1024:.1f} MiB (2nd quarter median) -> "
              f"{late / 1024:.1f} MiB (last quarter median)")
    print(f"  after the clients stopped: RSS {after[0] / 1024:.1f} MiB, {after[1]} fds "
          f"(idle {idle[1]}), {after[2]} ring maps, {after[3]} threads (idle {idle[3]})")
    print(f"  daemon exit status after SIGTERM: {rc}")
    for e in totals.errors:
        print("  error:", e)
    ok = flat_rss and back and totals.bad == 0 and rc == 0 and totals.runs > 0
    print(f"\nsoak: {'PASS' if ok else 'FAIL'} (figures in {out}/soak.csv)")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
