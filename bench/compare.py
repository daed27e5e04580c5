"""The loader table, the accelerator-utilisation benchmark and the machine's limits, in one
run on the same files and cores (run it through bench/compare.sh, which installs what is
needed first):

    bench/compare.sh [--quick] [--samples N] [--runs R] [--work DIR] [--skip PARTS]

1. Data: a generated ImageFolder of N ImageNet-like JPEGs (default 20,000; --photos: cut
   from real photographs instead, bench/real_photos.py), the same packed as a turbopump
   dataset, each peer's own format where it has one, and a raw-tensor dataset of
   114,660-byte samples (MLPerf Storage's resnet50 sample size). The time each loader's
   data preparation takes (pack, optimize, .beton, tar shards) is kept for the table.
2. Loaders ("loaders"): one shuffled epoch each, RandomResizedCrop 224 + flip, uint8,
   batch 256, every worker count = the number of cores, R runs in rotation (fresh
   processes): turbopump's C consumer and turbopump.Loader (one daemon with a decode
   thread per core); PyTorch DataLoader twice (ImageFolder + PIL, and decode_jpeg +
   transforms.v2 on tensors); WebDataset, DALI (CPU pipeline), FFCV, SPDL (as its image
   example, and with RandomResizedCrop as an FFmpeg filter) and LitData where they
   installed (bench/peers/install.sh says why one did not). Medians: samples/s, CPU ms
   per sample of the whole process tree (workers and the daemon included), peak PSS
   summed over the tree (shared pages once) and the RSS sum, time to the first batch;
   each loader's ratio to turbopump's C consumer, and turbopump's ratio to each peer's
   strongest row.
3. Accelerator utilisation ("au"): emulated accelerators (`turbopump consume --step-ms
   224`, batches of 400 raw samples, each accelerator its own rank), page cache dropped
   before every run, buffered and O_DIRECT daemons: AU = step time / wall time, and the
   most accelerators with AU >= 90%.
4. Limits ("limits"): fio random reads at the record sizes used, tjbench decode frames/s
   on the benchmark JPEGs, memcpy GB/s; turbopump's ratio to each.

Writes WORK/results.json, WORK/table.md and WORK/loaders.png, and prints the tables.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import measure  # noqa: E402

TP = os.environ.get("TURBOPUMP") or os.path.join(ROOT, "build", "tools", "turbopump")
PY = sys.executable
CORES = os.cpu_count() or 1
AU_SAMPLE_BYTES, AU_BATCH, AU_STEP_MS = 114660, 400, 224


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


# ---- data

def prepare(work, samples, au_samples, peers, photos=None):
    """photos: None for generated JPEGs (turbopump gen), else cut them from real
    photographs (bench/real_photos.py; "" for scikit-image's, or a directory)."""
    images, root = os.path.join(work, "images"), os.path.join(work, "root")
    os.makedirs(root, exist_ok=True)
    stamp = os.path.join(work, "images.%s%d" % ("photos." if photos is not None else "",
                                                 samples))
    if not os.path.exists(stamp):
        for old in glob.glob(os.path.join(work, "images.*")):
            os.remove(old)
        if photos is None:
            log("generating %d JPEGs" % samples)
            sh([TP, "gen", "imagefolder", images, "--samples", samples, "--classes", 100,
                "--seed", 1, "--force"], stdout=subprocess.DEVNULL)
        else:
            log("cutting %d JPEGs from photographs" % samples)
            sh([PY, os.path.join(HERE, "real_photos.py"), images, "--samples", samples,
                "--classes", 100, "--seed", 1] + (["--source", photos] if photos else []))
        t0 = time.time()
        sh([TP, "pack", images, os.path.join(root, "photos"), "--force", "--quiet"])
        prep_times(work, {"turbopump": time.time() - t0}, reset=True)
        for d in glob.glob(os.path.join(work, "peer-*")):
            shutil.rmtree(d)
        open(stamp, "w").close()
    au_stamp = os.path.join(work, "au.%d" % au_samples)
    if not os.path.exists(au_stamp):
        for old in glob.glob(os.path.join(work, "au.*")):
            os.remove(old)
        log("generating %d raw samples of %d bytes" % (au_samples, AU_SAMPLE_BYTES))
        sh([TP, "gen", "tensors", os.path.join(root, "au"), "--samples", au_samples,
            "--shape", "%dx1x1" % AU_SAMPLE_BYTES, "--force"], stdout=subprocess.DEVNULL)
        open(au_stamp, "w").close()
    for name, script in peers.items():
        if script and name in PREPARED:
            out = os.path.join(work, "peer-" + name.split()[0].lower())
            if os.path.exists(os.path.join(out, "done.json")):
                continue
            log("preparing %s's data" % name)
            t0 = time.time()
            sh([PY, script, "prepare", "--images", images, "--out", out, "--workers",
                str(CORES)], stdout=subprocess.DEVNULL)
            prep_times(work, {name: time.time() - t0})
    return images, root


# peers that convert the ImageFolder into their own format before a run (timed once, when
# it is written: the "prep" column)
PREPARED = ("WebDataset", "FFCV", "LitData")


def prep_times(work, new=None, reset=False):
    """WORK/prep.json: seconds each loader's data preparation took when it was last done
    (turbopump's pack, the peers' conversions); updated with new, returned."""
    path = os.path.join(work, "prep.json")
    have = {}
    if os.path.exists(path) and not reset:
        with open(path) as f:
            have = json.load(f)
    if new:
        have.update(new)
        with open(path, "w") as f:
            json.dump(have, f)
    return have


class Daemon:
    def __init__(self, root, sock, direct=False):
        if os.path.exists(sock):
            os.remove(sock)
        cmd = [TP, "serve", "--root", root, "--socket", sock, "--threads", str(CORES),
               "--quiet"] + (["--direct"] if direct else [])
        self.p = subprocess.Popen(cmd)
        self.sock = sock
        for _ in range(1000):
            if os.path.exists(sock):
                return
            time.sleep(0.01)
        raise RuntimeError("the daemon did not start")

    def stop(self):
        self.p.terminate()
        self.p.wait()


def drop_caches():
    """Empties the page cache (needs root). @return : whether it could."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# ---- loaders

def peer_scripts(venv_info):
    found = {}
    for name, key, script in (("WebDataset", "webdataset", "webdataset_run.py"),
                              ("DALI (CPU)", "dali", "dali_run.py"),
                              ("FFCV", "ffcv", "ffcv_run.py"),
                              ("SPDL", "spdl", "spdl_run.py"),
                              ("LitData", "litdata", "litdata_run.py")):
        info = venv_info.get(key, {"ok": False, "reason": "not tried (no peers.json)"})
        path = os.path.join(HERE, "peers", script)
        found[name] = (path if info.get("ok") and os.path.exists(path) else None,
                       info.get("version") if info.get("ok") else info.get("reason"))
    return found


def loader_commands(work, images, sock, peers, seed):
    cmds = {
        "turbopump (C consumer)": ([TP, "consume", "--socket", sock, "--dataset", "photos",
                                    "--batch-size", "256", "--seed", str(seed), "--json",
                                    "--no-autostart"], True),
        "turbopump.Loader": ([PY, os.path.join(HERE, "peers", "turbopump_run.py"), "run",
                              "--socket", sock, "--dataset", "photos", "--seed", str(seed)],
                             True),
    }
    for path, label in (("tutorial", DL_TUTORIAL), ("fast", DL_FAST)):
        cmds[label] = ([PY, os.path.join(HERE, "peers", "dataloader_run.py"), "run",
                        "--images", images, "--workers", str(CORES), "--seed", str(seed),
                        "--path", path], False)
    for name, (script, _) in peers.items():
        if script:
            data = os.path.join(work, "peer-" + name.split()[0].lower())
            cmd = [PY, script, "run", "--images", images, "--data", data, "--batch-size",
                   "256", "--workers", str(CORES), "--seed", str(seed)]
            if name == "SPDL":
                cmds[SPDL_EXAMPLE] = (cmd + ["--mode", "example"], False)
                cmds[SPDL_RRC] = (cmd + ["--mode", "rrc"], False)
            else:
                cmds[name] = (cmd, False)
    return cmds


DL_TUTORIAL = "PyTorch DataLoader (ImageFolder + PIL)"
DL_FAST = "PyTorch DataLoader (decode_jpeg + v2)"
SPDL_EXAMPLE = "SPDL (its example: resize, no crop)"
SPDL_RRC = "SPDL (RRC as FFmpeg crop+scale)"


def family(name):
    """The loader a row belongs to: its name up to a bracket."""
    return name.split(" (")[0]


def normalise(r):
    """consume --json speaks its own names; the runners speak samples/seconds/first."""
    if "first_batch_ms" in r:
        r["first"] = r["first_batch_ms"] / 1e3
    return r


def run_loaders(work, images, root, peers, runs, warmup=True):
    daemon = Daemon(root, os.path.join(work, "tp.sock"))
    results = {}
    try:
        # one untimed epoch each, so every loader starts from the same warm page cache
        for seed in range(-1 if warmup else 0, runs):
            for name, (cmd, uses_daemon) in loader_commands(work, images, daemon.sock, peers,
                                                            max(seed, 0)).items():
                log("%s %s" % ("warm-up" if seed < 0 else "run %d" % (seed + 1), name))
                try:
                    r = normalise(measure.run_child(cmd, daemon.p.pid if uses_daemon else None))
                except RuntimeError as e:
                    results.setdefault(name, {"error": str(e).splitlines()[0][:300]})
                    log("  failed: %s" % e)
                    continue
                if seed >= 0:
                    results.setdefault(name, {"runs": []}).setdefault("runs", []).append(r)
                    log("  %.1f samples/s" % (r["samples"] / r["seconds"]))
    finally:
        daemon.stop()
    table = {}
    for name, res in results.items():
        rs = res.get("runs")
        if not rs:
            table[name] = {"error": res.get("error", "no run completed")}
            continue
        table[name] = {
            "rate": statistics.median(r["samples"] / r["seconds"] for r in rs),
            "runs": [round(r["samples"] / r["seconds"], 1) for r in rs],
            "cpu_ms": statistics.median(1e3 * r["cpu"] / r["samples"] for r in rs),
            "rss_mib": statistics.median(r["rss_mib"] for r in rs),
            "pss_mib": statistics.median(r["pss_mib"] for r in rs),
            "first_s": statistics.median(r["first"] for r in rs),
            "samples": rs[0]["samples"],
        }
    return table


# ---- accelerator utilisation

def au_run(root, sock_dir, n, steps, direct):
    daemon = Daemon(root, os.path.join(sock_dir, "au.sock"), direct=direct)
    try:
        procs = [subprocess.Popen(
            [TP, "consume", "--socket", daemon.sock, "--dataset", "au", "--rank", str(i),
             "--world-size", str(n), "--batch-size", str(AU_BATCH), "--batches", str(steps),
             "--step-ms", str(AU_STEP_MS), "--transform", "none", "--json", "--no-autostart",
             "--seed", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for i in range(n)]
        outs = [p.communicate() for p in procs]
    finally:
        daemon.stop()
    res = []
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            raise RuntimeError("consume failed: %s" % err.decode(errors="replace")[-500:])
        res.append(json.loads(out.decode().splitlines()[-1]))
    # Runs here last seconds, not MLPerf's minutes, so the first batch (a cold start of
    # the session) would weigh far more than in a real run: AU is taken from the first
    # batch on, and the whole-run figure is kept beside it.
    aus = [r["compute_s"] / max(1e-9, r["seconds"] - r["first_batch_ms"] / 1e3) for r in res]
    wall = max(r["seconds"] for r in res)
    read = sum(r["bytes"] for r in res)
    return {"accelerators": n, "au_mean": statistics.mean(aus), "au_min": min(aus),
            "au_whole_run": statistics.mean(r["au"] for r in res),
            "first_batch_s": statistics.median(r["first_batch_ms"] / 1e3 for r in res),
            "mb_per_s": read / wall / 1e6}


def run_au(work, root, au_samples, steps):
    out = {}
    for mode, direct in (("buffered", False), ("O_DIRECT", True)):
        rows, best = [], 0
        for n in range(1, 65):
            if n * steps * AU_BATCH > au_samples:  # each sample read once per run
                break
            dropped = drop_caches()
            r = au_run(root, work, n, steps, direct)
            r["caches_dropped"] = dropped
            rows.append(r)
            log("AU %s: %d accelerators, AU %.1f%% (min %.1f%%), %.0f MB/s" % (
                mode, n, 100 * r["au_mean"], 100 * r["au_min"], r["mb_per_s"]))
            if r["au_mean"] < 0.9:
                break
            best = n
        out[mode] = {"rows": rows, "max_accelerators": best,
                     "limit_reached": bool(rows) and rows[-1]["au_mean"] < 0.9}
    return out


# ---- physical limits

def record_bytes(ds):
    with open(os.path.join(ds, "manifest.json")) as f:
        m = json.load(f)
    shards = glob.glob(os.path.join(ds, "*.tpr"))
    total = sum(os.path.getsize(s) for s in shards)
    return shards, total / max(1, m.get("samples", m.get("num_samples", 1)))


def fio(files, bs_kib, seconds):
    out = subprocess.run(
        ["fio", "--name=rand", "--filename=" + ":".join(f.replace(":", "\\:") for f in files),
         "--rw=randread", "--bs=%dk" % bs_kib, "--direct=1", "--ioengine=io_uring",
         "--iodepth=64", "--runtime=%d" % seconds, "--time_based", "--group_reporting",
         "--output-format=json"], check=True, stdout=subprocess.PIPE).stdout
    j = json.loads(out[out.index(b"{"):])["jobs"][0]["read"]
    return {"iops": j["iops"], "mb_per_s": j["bw"] * 1024 / 1e6}


def bench_io(ds, seconds):
    out = subprocess.run([TP, "bench", "io", ds, "--direct", "--qd", "64", "--seconds",
                          str(seconds), "--json"], check=True, stdout=subprocess.PIPE).stdout
    j = json.loads(out)
    return {"iops": j["iops"], "mb_per_s": j["mb_per_s"]}


def tjbench(images, count):
    files = sorted(glob.glob(os.path.join(images, "*", "*.jpg")))[:count]
    secs = 0.0
    for f in files:
        out = subprocess.run(["tjbench", f, "-rgb", "-benchtime", "0.1", "-warmup", "0.02",
                              "-quiet", "-nowrite"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.decode()
        for line in out.splitlines():
            w = line.split()
            if len(w) >= 9 and w[0] == "RGB":
                secs += float(w[4]) * float(w[5]) / (float(w[-1]) * 1e6)
    return len(files) / secs


def memcpy_gbps(work, seconds):
    exe = os.path.join(work, "memcpy")
    if not os.path.exists(exe):
        sh(["cc", "-O2", "-o", exe, os.path.join(HERE, "memcpy.c")])
    out = subprocess.run([exe, str(seconds)], check=True, stdout=subprocess.PIPE).stdout
    return float(out.split()[0])


def raw_consume_gbps(root, work):
    daemon = Daemon(root, os.path.join(work, "raw.sock"))
    try:
        cmd = [TP, "consume", "--socket", daemon.sock, "--dataset", "au", "--batch-size",
               "256", "--transform", "none", "--json", "--no-autostart"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the cache
        return json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)[
            "gb_per_s"]
    finally:
        daemon.stop()


def run_limits(work, images, root, quick, decode_rate):
    secs = 2 if quick else 5
    out = {}
    for name in ("photos", "au"):
        shards, per = record_bytes(os.path.join(root, name))
        bs = max(4, int(-(-per // 4096)) * 4)
        # three rounds in turn, medians: whatever one reader leaves in a cache below this
        # machine (a virtual disk's host) then helps both alike
        fs, ts = [], []
        for _ in range(3):
            fs.append(fio(shards, bs, secs))
            ts.append(bench_io(os.path.join(root, name), secs))
        f = {k: statistics.median(r[k] for r in fs) for k in ("iops", "mb_per_s")}
        t = {k: statistics.median(r[k] for r in ts) for k in ("iops", "mb_per_s")}
        out["io_" + name] = {"bs_kib": bs, "fio": f, "turbopump": t,
                             "ratio": t["mb_per_s"] / f["mb_per_s"]}
        log("IO %s: fio %.0f MB/s, turbopump %.0f MB/s" % (name, f["mb_per_s"],
                                                            t["mb_per_s"]))
    tj = tjbench(images, 50 if quick else 200)
    out["decode"] = {"tjbench_1core": tj, "tjbench_all_cores": tj * CORES,
                     "turbopump": decode_rate,
                     "ratio": decode_rate / (tj * CORES) if decode_rate else None}
    mc, raw = memcpy_gbps(work, 2), raw_consume_gbps(root, work)
    out["copy"] = {"memcpy_gbps": mc, "turbopump_gbps": raw, "ratio": raw / mc}
    return out


# ---- report

def report(res, args):
    lines = []
    m = res["machine"]
    lines.append("machine: %s; %d cores, %.0f GiB; %s" % (m["cpu"], m["cores"], m["mem_gib"],
                                                          m["date"]))
    if "loaders" in res:
        lines.append("")
        lines.append("Loaders: %d JPEGs (%s), one shuffled epoch, RandomResizedCrop 224 + "
                     "flip, uint8, batch 256, %d workers/threads each; medians of %d runs"
                     % (res["samples"], "cut from real photographs"
                        if res.get("images") == "photos" else "generated", CORES, args.runs))
        lines.append("")
        lines.append("| loader | samples/s | ratio to turbopump | CPU ms/sample (tree) | "
                     "peak PSS MiB (tree) | peak RSS sum MiB | first batch s | prep s | "
                     "runs (samples/s) |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        ref = res["loaders"].get("turbopump (C consumer)", {}).get("rate")
        prep = res.get("prep", {})
        for name, r in res["loaders"].items():
            if "error" in r:
                lines.append("| %s | failed: %s | | | | | | | |" % (name, r["error"]))
                continue
            p = prep.get(name, prep.get(family(name)))
            if p is None and name.startswith("turbopump"):
                p = prep.get("turbopump")  # the pack both turbopump rows read
            lines.append("| %s | %.1f | %s | %.2f | %.0f | %.0f | %.2f | %s | %s |" % (
                name, r["rate"], "%.2f" % (r["rate"] / ref) if ref else "-", r["cpu_ms"],
                r["pss_mib"], r["rss_mib"], r["first_s"],
                "%.1f" % p if p is not None else "-",
                ", ".join("%.1f" % x for x in r["runs"])))
        for name, (script, why) in res["peers"].items():
            if not script:
                lines.append("| %s | not installable here: %s | | | | | | | |" % (name, why))
        # each peer at its strongest: its fastest row, against turbopump in the same run
        best = {}
        for name, r in res["loaders"].items():
            if "rate" in r and not name.startswith("turbopump"):
                f = family(name)
                if f not in best or r["rate"] > best[f][1]["rate"]:
                    best[f] = (name, r)
        tl = res["loaders"].get("turbopump.Loader", {}).get("rate")
        if best:
            lines.append("")
            lines.append("Each peer's strongest row (its fastest), and turbopump's ratio to it:")
            lines.append("")
            lines.append("| peer | strongest row | samples/s | turbopump (C consumer) / it | "
                         "turbopump.Loader / it |")
            lines.append("|---|---|---|---|---|")
            for f, (name, r) in best.items():
                lines.append("| %s | %s | %.1f | %s | %s |" % (
                    f, name, r["rate"], "%.2f" % (ref / r["rate"]) if ref else "-",
                    "%.2f" % (tl / r["rate"]) if tl else "-"))
        v = res.get("versions")
        if v:
            lines.append("")
            lines.append("versions: " + ", ".join("%s %s" % kv for kv in v.items()))
    if "au" in res:
        lines.append("")
        lines.append("Accelerator utilisation: emulated accelerators, %d-byte samples, "
                     "batch %d, %d ms per step, %d steps each, page cache dropped before "
                     "each run; AU = step time / wall time from the first batch on"
                     % (AU_SAMPLE_BYTES, AU_BATCH, AU_STEP_MS, res["au_steps"]))
        lines.append("")
        lines.append("| reads | accelerators | AU (mean) | AU (lowest) | AU whole run | "
                     "first batch s | read MB/s |")
        lines.append("|---|---|---|---|---|---|---|")
        for mode, r in res["au"].items():
            for row in r["rows"]:
                lines.append("| %s | %d | %.1f%% | %.1f%% | %.1f%% | %.2f | %.0f |" % (
                    mode, row["accelerators"], 100 * row["au_mean"], 100 * row["au_min"],
                    100 * row["au_whole_run"], row["first_batch_s"], row["mb_per_s"]))
        for mode, r in res["au"].items():
            lines.append("")
            lines.append("%s: at most %d accelerators at AU >= 90%%%s" % (
                mode, r["max_accelerators"], "" if r["limit_reached"] else
                " (the dataset ran out before AU fell below 90%: at least that many)"))
    if "limits" in res:
        L = res["limits"]
        lines.append("")
        lines.append("| limit | reference | turbopump | ratio |")
        lines.append("|---|---|---|---|")
        for key, label in (("io_photos", "JPEG records"), ("io_au", "raw samples")):
            r = L[key]
            lines.append("| random reads, %d KiB, O_DIRECT, QD 64 (medians of 3) | fio %.0f MB/s (%.0f IOPS) "
                         "| bench io %.0f MB/s (%.0f IOPS) | %.2f |" % (
                             r["bs_kib"], r["fio"]["mb_per_s"], r["fio"]["iops"],
                             r["turbopump"]["mb_per_s"], r["turbopump"]["iops"], r["ratio"]))
        d = L["decode"]
        lines.append("| JPEG decode, all cores | tjbench %.0f frames/s (%.0f per core) | C "
                     "consumer, RRC 224 %s | %s |" % (
                         d["tjbench_all_cores"], d["tjbench_1core"],
                         "%.0f images/s" % d["turbopump"] if d["turbopump"] else "-",
                         "%.2f" % d["ratio"] if d["ratio"] else "-"))
        c = L["copy"]
        lines.append("| memory copy | memcpy %.2f GB/s (1 thread) | raw tensors to a consumer "
                     "%.2f GB/s | %.2f |" % (c["memcpy_gbps"], c["turbopump_gbps"], c["ratio"]))
    return "\n".join(lines)


def chart(res, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("no matplotlib: no chart")
        return None
    rows = [(n, r) for n, r in res["loaders"].items() if "rate" in r]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(rows) + 1.6))
    for ax, key, title in zip(axes, ("rate", "cpu_ms", "pss_mib"),
                              ("samples/s (higher is better)", "CPU ms per sample (lower)",
                               "peak PSS of the process tree, MiB (lower)")):
        names = [n for n, _ in rows]
        vals = [r[key] for _, r in rows]
        colors = ["#d62728" if n.startswith("turbopump") else "#7f7f7f" for n in names]
        ax.barh(names, vals, color=colors)
        ax.invert_yaxis()
        ax.set_title(title)
        for i, v in enumerate(vals):
            ax.text(v, i, " %.0f" % v if v >= 10 else " %.2f" % v, va="center")
        ax.margins(x=0.2)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle("%d JPEGs, RandomResizedCrop 224 + flip, batch 256, %d cores (%s)"
                 % (res["samples"], CORES, res["machine"]["cpu"]))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def versions(info):
    """Python, torch, torchvision and every peer that installed, as used in this run."""
    from importlib import metadata
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "torchvision", "numpy", "Pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    for key, r in sorted(info.items()):
        if r.get("ok") and key not in out and key != "torch":
            out[key] = r["version"]
    return out


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return {"cpu": cpu, "cores": CORES, "mem_gib": mem,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2,000 JPEGs, 1 run, a smaller AU dataset: a few minutes")
    ap.add_argument("--samples", type=int, help="JPEGs (default 20000; --quick 2000)")
    ap.add_argument("--runs", type=int, help="runs per loader (default 3; --quick 1)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench-compare"))
    ap.add_argument("--skip", default="", help="comma-separated: loaders, au, limits")
    ap.add_argument("--peers-json", help="the peers' install report (bench/peers/install.sh)")
    ap.add_argument("--photos", nargs="?", const="", metavar="DIR",
                    help="JPEGs cut from real photographs (scikit-image's, or those in DIR: "
                         "bench/real_photos.py) instead of generated ones")
    ap.add_argument("--no-warmup", action="store_true",
                    help="no untimed epoch of each loader before the timed runs")
    args = ap.parse_args()
    args.samples = args.samples or (2000 if args.quick else 20000)
    args.runs = args.runs or (1 if args.quick else 3)
    au_samples, au_steps = (8000, 5) if args.quick else (24000, 10)
    skip = set(filter(None, args.skip.split(",")))
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    info = {}
    if args.peers_json and os.path.exists(args.peers_json):
        with open(args.peers_json) as f:
            info = json.load(f)
    peers = peer_scripts(info)
    images, root = prepare(work, args.samples, au_samples,
                           {n: s for n, (s, _) in peers.items()} if "loaders" not in skip
                           else {}, photos=args.photos)
    res = {"machine": machine(), "samples": args.samples, "peers": peers, "au_steps": au_steps,
           "images": "generated" if args.photos is None else "photos",
           "prep": prep_times(work), "versions": versions(info)}
    if "loaders" not in skip:
        res["loaders"] = run_loaders(work, images, root, peers, args.runs,
                                     warmup=not args.no_warmup)
    if "au" not in skip:
        res["au"] = run_au(work, root, au_samples, au_steps)
    if "limits" not in skip:
        rate = res.get("loaders", {}).get("turbopump (C consumer)", {}).get("rate")
        res["limits"] = run_limits(work, images, root, args.quick, rate)
    text = report(res, args)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(work, "table.md"), "w") as f:
        f.write(text + "\n")
    png = chart(res, os.path.join(work, "loaders.png")) if "loaders" in res else None
    print(text)
    print("\nwritten: %s%s" % (os.path.join(work, "table.md"), ", " + png if png else ""))


if __name__ == "__main__":
    main()
