"""One shuffled epoch of LitData (Lightning AI), used as its README shows: `litdata.optimize`
writes the ImageFolder into chunks once, then `StreamingDataset(shuffle=True,
transform=...)` read by a `StreamingDataLoader(batch_size, num_workers=W)`.

- prepare: optimize(fn, inputs=[(path, label)], output_dir=DIR/optimized,
  num_workers=W, chunk_bytes="64MB"), fn returning {"image": litdata.Image(path=path),
  "class": label}: the README's "optimize images as JPEG" recipe, which keeps each existing
  .jpg's bytes (no re-encoding).
- run: StreamingDataset(DIR/optimized, shuffle=True, seed=S, transform=f), which decodes
  each image to a uint8 CHW tensor (litdata's image serializer), and f applies torchvision's
  transforms.v2 RandomResizedCrop(224, antialias=True) + RandomHorizontalFlip to it, in the
  StreamingDataLoader's W worker processes; batches reach the loop as uint8 [B, 3, 224, 224]
  with int64 labels [B].

    python3 bench/peers/litdata_run.py prepare --images IMAGES --out DIR [--workers W]
    python3 bench/peers/litdata_run.py run --images IMAGES --data DIR \
        [--batch-size 256] [--workers W] [--seed S] [--check]

prepare does nothing when DIR already holds the optimized copy of IMAGES, and prints
{"prepare_seconds": T} (the optimize call's wall time) when it writes one. run prints one
JSON line: {"samples", "seconds", "first"} (seconds from just before the dataset is built to
the end of the epoch; first: to the first batch). --check asserts the first batch's shape,
dtype and shuffling, and the epoch's count and labels against IMAGES.
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


def to_sample(item):
    """optimize's fn: one (path, label) input -> one stored sample."""
    import litdata
    path, label = item
    return {"image": litdata.Image(path=path), "class": label}


def prepare(a):
    items = runner.list_imagefolder(a.images)
    out = os.path.join(a.out, "optimized")
    want = {"images": os.path.abspath(a.images), "samples": len(items)}
    if os.path.exists(os.path.join(out, "index.json")) and runner.read_stamp(a.out) == want:
        runner.log("%s already holds %d samples" % (out, want["samples"]))
        return
    import litdata
    for old in (os.path.join(a.out, "done.json"), out):
        if os.path.isdir(old):
            shutil.rmtree(old)
        elif os.path.exists(old):
            os.remove(old)
    workers = a.workers if a.workers >= 1 else (os.cpu_count() or 1)
    t0 = time.time()
    litdata.optimize(fn=to_sample, inputs=items, output_dir=out, num_workers=workers,
                     chunk_bytes="64MB")
    seconds = time.time() - t0
    runner.write_stamp(a.out, want)
    runner.log("optimized %d samples into %s in %.1f s" % (want["samples"], out, seconds))
    print(json.dumps({"prepare_seconds": seconds}), flush=True)


class Augment:
    """StreamingDataset's transform: RandomResizedCrop + flip on the decoded uint8 image."""

    def __init__(self):
        from torchvision.transforms import v2
        self.t = v2.Compose([v2.RandomResizedCrop(224, antialias=True),
                             v2.RandomHorizontalFlip()])

    def __call__(self, sample, *args, **kwargs):
        return self.t(sample["image"]), sample["class"]


def run(a, result_fd):
    counts = runner.class_counts(a.images)
    data = os.path.join(a.data, "optimized")
    if not os.path.exists(os.path.join(data, "index.json")):
        sys.exit("error: %s is missing; run `prepare --images %s --out %s` first"
                 % (data, a.images, a.data))
    import torch
    import litdata

    def check_first(x, y):
        runner.check_batch(x, y, (min(a.batch_size, sum(counts.values())), 3, 224, 224))
        assert y.shape == (x.shape[0],), y.shape

    torch.manual_seed(a.seed)
    t0 = time.time()
    ds = litdata.StreamingDataset(data, shuffle=True, seed=a.seed, drop_last=False,
                                  transform=Augment())
    loader = litdata.StreamingDataLoader(ds, batch_size=a.batch_size,
                                         num_workers=a.workers if a.workers >= 1 else 2)
    runner.epoch(a, t0, loader, counts, check_first, result_fd)


if __name__ == "__main__":
    sys.exit(runner.main(__doc__, prepare, run,
                         out_help="prepare: where the optimized chunks go",
                         data_help="run: the directory prepare wrote", workers=-1,
                         workers_help="worker processes (prepare: default all cores; "
                                      "run: default 2)"))
