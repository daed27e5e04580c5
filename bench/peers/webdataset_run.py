"""One shuffled epoch of WebDataset over tar shards, the way WebDataset's documentation
reads training data: shard shuffle, a sample shuffle buffer, decode("pil"), torchvision's
RandomResizedCrop(224) + RandomHorizontalFlip + PILToTensor (uint8 CHW), batches made in
the workers of a WebLoader (torch DataLoader, num_workers=W), then unbatched, shuffled
across workers and rebatched to exactly BATCH in the training process.

    python3 bench/peers/webdataset_run.py prepare --images IMAGES --out DIR
    python3 bench/peers/webdataset_run.py run --images IMAGES --data DIR \
        [--batch-size 256] [--workers W] [--seed S] [--check]

prepare writes DIR/shard-NNNNNN.tar: each sample's original JPEG bytes as KEY.jpg and its
label (index of its class directory in sorted order, as torchvision's ImageFolder) as
KEY.cls; about 1000 samples a shard, but at least 8 shards, so that every worker has shards
to read on small sets. It does nothing when DIR already holds the shards of IMAGES.

run prints one JSON line: {"samples", "seconds", "first"} (seconds from just before the
dataset and loader are built to the end of the epoch; first: to the first batch). The
batches reach the loop as uint8 tensors [B, 3, 224, 224] with int64 labels; the rebatching
copy is part of the time. Everything else goes to stderr. --check asserts the first batch's
shape, dtype and shuffling, and the epoch's count and labels against IMAGES.
"""
import glob
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402

SHARD_SAMPLES = 1000
MIN_SHARDS = 8
SHUFFLE = 1000  # the sample shuffle buffer in the docs' examples


def prepare(a):
    samples = runner.list_imagefolder(a.images)
    want = {"images": os.path.abspath(a.images), "samples": len(samples)}
    have = runner.read_stamp(a.out) or {}
    shards = have.get("shards") or []
    if all(have.get(k) == v for k, v in want.items()) and shards and all(
            os.path.exists(os.path.join(a.out, s)) for s in shards):
        runner.log("%s already holds %d samples in %d shards" % (a.out, len(samples),
                                                               len(shards)))
        return
    import webdataset as wds
    os.makedirs(a.out, exist_ok=True)
    stamp = os.path.join(a.out, "done.json")
    for old in glob.glob(os.path.join(a.out, "shard-*.tar")) + [stamp]:
        if os.path.exists(old):
            os.remove(old)
    per_shard = max(1, min(SHARD_SAMPLES, math.ceil(len(samples) / MIN_SHARDS)))
    t0 = time.time()
    with wds.ShardWriter(os.path.join(a.out, "shard-%06d.tar"), maxcount=per_shard,
                         verbose=0) as sink:
        for i, (path, label) in enumerate(samples):
            with open(path, "rb") as f:
                sink.write({"__key__": "%08d" % i, "jpg": f.read(), "cls": label})
    shards = sorted(os.path.basename(p) for p in glob.glob(os.path.join(a.out, "shard-*.tar")))
    runner.write_stamp(a.out, dict(want, shards=shards, per_shard=per_shard))
    runner.log("wrote %d samples in %d shards to %s in %.1f s" % (len(samples), len(shards),
                                                                a.out, time.time() - t0))


def run(a, result_fd):
    meta = runner.read_stamp(a.data)
    if meta is None:
        sys.exit("error: %s has no shards; run `prepare --images %s --out %s` first"
                 % (a.data, a.images, a.data))
    urls = [os.path.join(a.data, s) for s in meta["shards"]]
    if len(urls) < a.workers:
        runner.log("warning: %d shards for %d workers: some workers will have nothing to read"
                   % (len(urls), a.workers))
    counts = runner.class_counts(a.images) if a.check else None
    import torch
    import webdataset as wds
    from torchvision import transforms as T
    torch.manual_seed(a.seed)
    transform = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()])

    def check_first(x, y):
        assert isinstance(x, torch.Tensor) and x.dtype == torch.uint8, (type(x), x.dtype)
        assert tuple(x.shape) == (min(a.batch_size, meta["samples"]), 3, 224, 224), \
            tuple(x.shape)
        assert len(y) == x.shape[0] and "int" in str(y.dtype), (len(y), y.dtype)

    t0 = time.time()
    dataset = (wds.WebDataset(urls, shardshuffle=len(urls), seed=a.seed, empty_check=False)
               .shuffle(SHUFFLE)
               .decode("pil")
               .to_tuple("jpg", "cls")
               .map_tuple(transform, lambda y: y)
               .batched(a.batch_size, partial=True))
    loader = wds.WebLoader(dataset, batch_size=None, num_workers=a.workers)
    loader = loader.unbatched().shuffle(SHUFFLE).batched(a.batch_size, partial=True)
    runner.epoch(a, t0, loader, counts, check_first, result_fd)


if __name__ == "__main__":
    sys.exit(runner.main(__doc__, prepare, run, out_help="prepare: where the shards go",
                         data_help="run: the directory prepare wrote"))
