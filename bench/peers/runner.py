"""What the bench/peers/*_run.py scripts share: reading the ImageFolder, the command line,
keeping stdout for the result, and the timed epoch with its checks and JSON result line
{"samples", "seconds", "first"}."""
import argparse
import collections
import json
import os
import sys
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def list_imagefolder(images):
    """[(path, label)] in ImageFolder's order: classes and files sorted."""
    if not os.path.isdir(images):
        sys.exit("error: %s is not a directory" % images)
    classes = sorted(e.name for e in os.scandir(images) if e.is_dir())
    out = []
    for label, c in enumerate(classes):
        d = os.path.join(images, c)
        out += [(os.path.join(d, f), label) for f in sorted(os.listdir(d))
                if f.lower().endswith((".jpg", ".jpeg"))]
    if not out:
        sys.exit("error: no JPEGs under %s/CLASS/" % images)
    return out


def class_counts(images):
    """{label: number of JPEGs}, labels numbered over the sorted class directories."""
    return collections.Counter(label for _, label in list_imagefolder(images))


def read_stamp(out):
    """DIR/done.json, the record prepare leaves of what DIR holds, or None."""
    try:
        with open(os.path.join(out, "done.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def write_stamp(out, record):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "done.json"), "w") as f:
        json.dump(record, f)


def stdout_to_stderr():
    """Points fd 1 at stderr (for libraries' native code and workers); returns a fd for the
    result."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    return fd


def write_result(fd, samples, seconds, first):
    """Writes the one JSON result line to fd."""
    sys.stdout.flush()
    os.write(fd, (json.dumps({"samples": samples, "seconds": seconds, "first": first})
                  + "\n").encode())


def parser(doc, commands=("run",), check_help="assert the first batch's shape and dtype"):
    """An ArgumentParser with COMMAND, --batch-size, --seed and --check."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("command", choices=list(commands))
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help=check_help)
    return ap


def main(doc, prepare, run, out_help, data_help, workers=2, workers_help=None,
         needs_data=True, extra_args=None):
    """The command line of a peer that reads an ImageFolder: `prepare --images --out` calls
    prepare(args); `run --images [--data]` calls run(args, result_fd) with stdout pointed at
    stderr. extra_args(parser), if given, adds the peer's own options."""
    ap = parser(doc, ("prepare", "run"), "assert shapes, dtype, count, labels")
    ap.add_argument("--images", required=True, help="ImageFolder: IMAGES/CLASS/NAME.jpg")
    ap.add_argument("--out", help=out_help)
    ap.add_argument("--data", help=data_help)
    ap.add_argument("--workers", type=int, default=workers, help=workers_help)
    if extra_args:
        extra_args(ap)
    a = ap.parse_args()
    if a.command == "prepare":
        if not a.out:
            ap.error("prepare needs --out DIR")
        prepare(a)
    else:
        if needs_data and not a.data:
            ap.error("run needs --data DIR (the directory prepare wrote)")
        run(a, stdout_to_stderr())
    return 0


def check_batch(x, y, shape):
    """--check of a first batch: x a uint8 CPU torch tensor of this shape, y one integer
    label per sample."""
    import torch
    assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8, (type(x), x.dtype)
    assert x.device.type == "cpu", x.device
    assert tuple(x.shape) == tuple(shape), (tuple(x.shape), shape)
    assert y.shape[0] == x.shape[0] and not y.is_floating_point(), (y.shape, y.dtype)


def epoch(a, t0, batches, counts, check_first, result_fd):
    """Reads the (x, y) batches to the end and writes the result line, timed from t0. With
    --check: check_first(x, y) on the first batch, whose labels must not be in file order, and
    the epoch's count and labels against counts ({label: samples} of IMAGES)."""
    first, n, labels = None, 0, collections.Counter()
    for x, y in batches:
        if first is None:
            first = time.time() - t0
            if a.check:
                check_first(x, y)
                first_labels = [int(v) for v in y.reshape(-1)]
                assert first_labels != sorted(first_labels), \
                    "the first batch is in file order: not shuffled"
        n += len(y)
        if a.check:
            labels.update(int(v) for v in y.reshape(-1))
    seconds = time.time() - t0
    if a.check:
        want = sum(counts.values())
        assert n == want, "epoch gave %d samples, expected %d" % (n, want)
        assert labels == counts, "labels per class differ from %s" % a.images
        log("check passed: %d samples, labels match %s" % (n, a.images))
    write_result(result_fd, n, seconds, first)
