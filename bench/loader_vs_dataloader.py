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
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import measure  # noqa: E402

TP = os.environ.get("TURBOPUMP") or os.path.join(HERE, "..", "build", "tools", "turbopump")


def run(kind, images, sock, daemon):
    if kind == "torch":
        cmd = [sys.executable, os.path.join(HERE, "peers", "dataloader_run.py"), "run",
               "--images", images, "--workers", "2"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "peers", "turbopump_run.py"), "run",
               "--socket", sock, "--dataset", "dataset", "--seed", "1"]
    return measure.run_child(cmd, daemon.pid if kind != "torch" else None)


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
