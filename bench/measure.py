"""Measuring a loader run the same way for every loader: a fresh child process (plus,
for turbopump, the daemon it reads from), its samples/s, CPU seconds (the child, its
workers, and the daemon's share), peak resident memory of the whole process tree (sampled
every 20 ms), and the time to the first batch as the child reports it."""
import json
import os
import subprocess
import threading
import time

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
TICK = os.sysconf("SC_CLK_TCK")


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
    total, todo, seen = 0, list(pids), set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += children.get(p, [])
        try:
            with open("/proc/%d/statm" % p) as f:
                total += int(f.read().split()[1]) * PAGE_KIB
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """User + system CPU seconds of a live process (its own threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run_child(cmd, daemon=None, env=None, timeout=3600):
    """Runs cmd, which prints one JSON line {"samples", "seconds", "first"} last on stdout.
    Returns that dict with "cpu" (seconds: the child and the workers it waited for, plus
    the daemon's CPU meanwhile) and "rss_mib" (peak of the child's tree plus the
    daemon's) added, or raises RuntimeError with the child's error output."""
    before = os.times()
    cpu0 = cpu_seconds(daemon) if daemon else 0.0
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kib([p.pid] + ([daemon] if daemon else [])))
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
    r["cpu"] = (after.children_user - before.children_user + after.children_system -
                before.children_system) + ((cpu_seconds(daemon) - cpu0) if daemon else 0.0)
    r["rss_mib"] = peak[0] / 1024
    return r
