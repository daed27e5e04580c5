"""turbopump.Loader against torch's DataLoader on the same ImageFolder, same cores:

    python3 bench/loader_vs_dataloader.py [--samples 2000] [--runs 3] [--work DIR]

Both produce RandomResizedCrop(224) + RandomHorizontalFlip uint8 batches of 256:
DataLoader(ImageFolder(transform=RRC + flip + PILToTensor), num_workers=2) against
turbopump.Loader (transform rrc224) reading from a daemon with 2 decode threads. Each run
is a fresh process reading one epoch. Printed per loader: samples/s, CPU seconds per
sample (the process, its workers, and for turbopump the daemon), peak RSS of all those
processes together (sampled every 20 ms), time to the first batch; medians of the runs
and turbopump's ratio to DataLoader.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TP = os.environ.get("TURBOPUMP") or os.path.join(HERE, "..", "build", "tools", "turbopump")

CHILD = r'''
import json, os, resource, sys, time
kind, path, sock = sys.argv[1:4]
import torch
t0 = time.time()
if kind == "torch":
    import torchvision
    from torchvision import transforms as T
    ds = torchvision.datasets.ImageFolder(path, transform=T.Compose([
        T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()]))
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=True, num_workers=2)
    it = ((x, y) for x, y in loader)
else:
    import turbopump
    loader = turbopump.Loader("dataset", 256, transform="rrc224", seed=1, socket=sock)
    it = ((b["jpg"], b["cls"]) for b in loader)
first, n = None, 0
for x, y in it:
    if first is None:
        first = time.time() - t0
    n += int(y.shape[0])
secs = time.time() - t0
ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(json.dumps({"samples": n, "seconds": secs, "first": first,
                  "cpu": sum(r.ru_utime + r.ru_stime for r in ru)}))
'''


def tree_rss_kib(pids):
    """Resident memory of these processes and all their descendants, in KiB."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, list(pids)
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(kind, images, sock, daemon):
    env = dict(os.environ)
    p = subprocess.Popen([sys.executable, "-c", CHILD, kind, images, sock],
                         stdout=subprocess.PIPE, env=env)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib([p.pid] + ([daemon.pid] if daemon else [])))
            time.sleep(0.02)

    t = threading.Thread(target=sample)
    cpu0 = cpu_seconds(daemon.pid) if daemon else 0
    t.start()
    out = json.loads(p.communicate()[0])
    done.set()
    t.join()
    out["cpu"] += (cpu_seconds(daemon.pid) - cpu0) if daemon else 0
    out["rss_mib"] = peak[0] / 1024
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(HERE, "..", "build", "bench-loader"))
    args = ap.parse_args()
    work = os.path.abspath(args.work)
    images, root = os.path.join(work, "images"), os.path.join(work, "root")
    os.makedirs(root, exist_ok=True)
    stamp = os.path.join(work, "images.%d" % args.samples)
    if not os.path.exists(stamp):
        subprocess.run([TP, "gen", "imagefolder", images, "--samples", str(args.samples),
                        "--classes", "10", "--seed", "1", "--force"], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([TP, "pack", images, os.path.join(root, "dataset"), "--force",
                        "--quiet"], check=True)
        open(stamp, "w").close()
    sock = os.path.join(work, "tp.sock")
    daemon = subprocess.Popen([TP, "serve", "--root", root, "--socket", sock, "--threads",
                               "2", "--quiet"])
    try:
        while not os.path.exists(sock):
            time.sleep(0.01)
        results = {"torch": [], "turbopump": []}
        for _ in range(args.runs):
            results["torch"].append(run("torch", images, sock, None))
            results["turbopump"].append(run("turbopump", images, sock, daemon))
    finally:
        daemon.terminate()
        daemon.wait()
    print("machine: %d cores; %d images, batch 256, RandomResizedCrop 224 + flip, uint8"
          % (os.cpu_count(), args.samples))
    med = {}
    for kind, rs in results.items():
        m = {k: statistics.median(r[k] for r in rs) for k in ("samples", "seconds", "first",
                                                             "cpu", "rss_mib")}
        m["rate"] = statistics.median(r["samples"] / r["seconds"] for r in rs)
        m["cpu_per_sample_ms"] = statistics.median(1e3 * r["cpu"] / r["samples"] for r in rs)
        med[kind] = m
        print("%-10s %8.1f samples/s (runs %s)  %.2f CPU ms/sample  peak RSS %.0f MiB  "
              "first batch %.2f s" % (kind, m["rate"], ", ".join(
                  "%.1f" % (r["samples"] / r["seconds"]) for r in rs), m["cpu_per_sample_ms"],
                  m["rss_mib"], m["first"]))
    a, b = med["turbopump"], med["torch"]
    print("turbopump / DataLoader: samples/s %.2fx, CPU per sample %.2fx, peak RSS %.2fx, "
          "first batch %.2fx" % (a["rate"] / b["rate"], a["cpu_per_sample_ms"] /
                                 b["cpu_per_sample_ms"], a["rss_mib"] / b["rss_mib"],
                                 a["first"] / b["first"]))


if __name__ == "__main__":
    main()
