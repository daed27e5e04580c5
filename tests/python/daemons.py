"""Starts `turbopump serve` for a test and waits until its socket is there."""
import os
import subprocess
import time


def start_daemon(root, sock, threads=2):
    p = subprocess.Popen([os.environ["TURBOPUMP"], "serve", "--root", str(root), "--socket",
                          str(sock), "--threads", str(threads), "--quiet"])
    for _ in range(500):
        if os.path.exists(sock):
            return p
        time.sleep(0.01)
    p.kill()
    raise RuntimeError("daemon did not start")
