"""One epoch of turbopump.Loader from a running daemon: RandomResizedCrop 224 + flip
(transform rrc224), uint8 NHWC tensors, shuffled, zero-copy from the daemon's ring.

    python3 bench/peers/turbopump_run.py run --socket SOCK --dataset NAME --batch-size 256 [--seed S]

Prints one JSON line: {"samples", "seconds", "first"} (seconds from before the loader is
built to the end of the epoch; first: to the first batch)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


def main():
    ap = runner.parser(__doc__)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--dataset", required=True)
    a = ap.parse_args()
    import torch  # noqa: F401  (tensors, as the other loaders give)
    import turbopump
    t0 = time.time()
    loader = turbopump.Loader(a.dataset, a.batch_size, transform="rrc224", seed=a.seed,
                              socket=a.socket, autostart=False)
    first, n = None, 0
    for b in loader:
        x, y = b["jpg"], b["cls"]
        if first is None:
            first = time.time() - t0
            if a.check:
                assert str(x.dtype) == "torch.uint8" and tuple(x.shape[1:]) == (224, 224, 3)
        n += int(y.shape[0])
    runner.write_result(sys.stdout.fileno(), n, time.time() - t0, first)


if __name__ == "__main__":
    sys.exit(main())
