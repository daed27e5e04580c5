"""Measuring a loader run the same way for every loader: a fresh child process (plus,
for turbopump, the daemon it reads from), its samples/s, CPU seconds of the whole process
tree (the child, every worker process it started, waited for or not, and the daemon's
share), peak memory of the tree (PSS summed over its processes, so pages they share --
libraries, a ring in shared memory, a mapped dataset -- count once; and the RSS sum, which
counts them in every process), and the time to the first batch as the child reports it."""
import json
import os
import subprocess
import threading
import time

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICK = os.sysconf("SC_CLK_TCK")


def tree_pids(pids):
    """These processes and all their live descendants."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open("/proc/%s/stat" % p) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    todo, seen = list(pids), []
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += children.get(p, [])
    return seen


def tree_rss_kib(pids):
    """Resident memory of these processes and all their descendants, in KiB."""
    total = 0
    for p in tree_pids(pids):
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except OSError:
            pass
    return total


def pss_kib(pid):
    """Proportional set size of one process (its share of every page it maps), KiB."""
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (its own threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_child(cmd, daemon=None, env=None, timeout=3600):
    """Runs cmd, which prints one JSON line {"samples", "seconds", "first"} last on stdout.
    Returns that dict with "cpu" (seconds: the child's whole process tree plus the daemon's
    CPU meanwhile), "pss_mib" (peak PSS summed over the child's tree and the daemon) and
    "rss_mib" (peak RSS sum of the same) added, or raises RuntimeError with the child's
    error output.

    CPU of the tree is the larger of two counts: what the kernel charged to the child and
    the descendants it (and they) waited for, and the sum over every process seen in the
    tree of its own CPU when last sampled (every 20 ms), which also counts workers that were
    never waited for (a library's persistent workers, a process handed to init)."""
    before = os.times()
    cpu0 = cpu_seconds(daemon) if daemon else 0.0
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak, pss_peak, seen_cpu, done = [0], [0], {}, threading.Event()

    def sample():
        tick = 0
        while not done.is_set():
            pids = tree_pids([p.pid])
            rss = pss = 0
            for q in pids + ([daemon] if daemon else []):
                try:
                    with open("/proc/%d/statm" % q) as f:
                        rss += int(f.read().split()[1]) * PAGE_KIB
                    if tick % 5 == 0:  # smaps_rollup walks the page tables: every 100 ms
                        pss += pss_kib(q)
                    if q != daemon:
                        seen_cpu[q] = cpu_seconds(q)
                except (OSError, ValueError, IndexError):
                    pass
            peak[0] = max(peak[0], rss)
            if tick % 5 == 0:
                pss_peak[0] = max(pss_peak[0], pss)
            tick += 1
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    done.set()
    t.join()
    after = os.times()
    if p.returncode != 0:
        raise RuntimeError("%s exited with %s: %s" % (os.path.basename(cmd[1] if len(cmd) > 1
                                                                       else cmd[0]),
                                                      p.returncode,
                                                      err.decode(errors="replace")[-2000:]))
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError("no result from %s: %s" % (cmd, err.decode(errors="replace")[-2000:]))
    r = json.loads(lines[-1])
    waited = (after.children_user - before.children_user + after.children_system -
              before.children_system)
    sampled = sum(seen_cpu.values())
    r["cpu"] = max(waited, sampled) + ((cpu_seconds(daemon) - cpu0) if daemon else 0.0)
    r["cpu_waited"], r["cpu_sampled"] = waited, sampled
    r["rss_mib"] = peak[0] / 1024
    r["pss_mib"] = pss_peak[0] / 1024
    return r
