"""One shuffled epoch of FFCV's Loader over a .beton file, set up as FFCV's ImageNet
example sets up training: RandomResizedCropRGBImageDecoder((224, 224)) (scale (0.08, 1),
ratio (3/4, 4/3)), RandomHorizontalFlip, ToTensor; IntDecoder, ToTensor, Squeeze for the
labels; num_workers=W threads; order RANDOM with os_cache=True, which FFCV's tuning guide
gives for a dataset that fits in memory (QUASI_RANDOM is for os_cache=False, when it does
not). Batches reach the loop as uint8 tensors [B, 224, 224, 3] with int64 labels, without
a copy; drop_last=False so that the epoch has every sample.

    python3 bench/peers/ffcv_run.py prepare --images IMAGES --out DIR [--workers W]
    python3 bench/peers/ffcv_run.py run --images IMAGES --data DIR \
        [--batch-size 256] [--workers W] [--seed S] [--check]

prepare writes DIR/train.beton with FFCV's DatasetWriter from torchvision's ImageFolder (so
labels are the indices of the sorted class directories): RGBImageField(write_mode="jpg",
max_resolution=None, jpeg_quality=90) stores every image as a JPEG at its original size
(FFCV decodes and re-encodes it at quality 90, its default), and IntField the label. It
does nothing when DIR already holds the .beton of IMAGES.

run prints one JSON line: {"samples", "seconds", "first"} (seconds from just before the
Loader is built to the end of the epoch, so "first" includes numba's compilation of the
pipeline). Everything else goes to stderr. --check asserts the first batch's shape, dtype
and shuffling, and the epoch's count and labels against IMAGES.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


def prepare(a):
    counts = runner.class_counts(a.images)
    beton = os.path.join(a.out, "train.beton")
    want = {"images": os.path.abspath(a.images), "samples": sum(counts.values())}
    if os.path.exists(beton) and runner.read_stamp(a.out) == want:
        runner.log("%s already holds %d samples" % (beton, want["samples"]))
        return
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter
    from torchvision.datasets import ImageFolder
    os.makedirs(a.out, exist_ok=True)
    for old in (os.path.join(a.out, "done.json"), beton):
        if os.path.exists(old):
            os.remove(old)
    dataset = ImageFolder(a.images)  # (PIL RGB image, label) pairs
    if len(dataset) != want["samples"]:
        sys.exit("error: ImageFolder found %d images in %s, expected %d"
                 % (len(dataset), a.images, want["samples"]))
    t0 = time.time()
    writer = DatasetWriter(beton, {
        # "jpg": always JPEG (no raw pixels); max_resolution=None: no downscaling;
        # quality 90: FFCV's default and its ImageNet example's.
        "image": RGBImageField(write_mode="jpg", max_resolution=None, jpeg_quality=90),
        "label": IntField(),
    }, num_workers=a.workers)
    writer.from_indexed_dataset(dataset)
    runner.write_stamp(a.out, want)
    runner.log("wrote %d samples to %s (%.1f MB) in %.1f s" % (
        want["samples"], beton, os.path.getsize(beton) / 1e6, time.time() - t0))


def run(a, result_fd):
    counts = runner.class_counts(a.images)
    beton = os.path.join(a.data, "train.beton")
    if not os.path.exists(beton):
        sys.exit("error: %s is missing; run `prepare --images %s --out %s` first"
                 % (beton, a.images, a.data))
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import RandomHorizontalFlip, Squeeze, ToTensor

    def check_first(x, y):
        runner.check_batch(x, y, (min(a.batch_size, sum(counts.values())), 224, 224, 3))
        assert y.shape == (x.shape[0],), y.shape

    workers = a.workers if a.workers >= 1 else 2
    t0 = time.time()
    loader = Loader(beton, batch_size=a.batch_size, num_workers=workers,
                    order=OrderOption.RANDOM, os_cache=True, drop_last=False, seed=a.seed,
                    pipelines={
                        "image": [RandomResizedCropRGBImageDecoder((224, 224)),
                                  RandomHorizontalFlip(), ToTensor()],
                        "label": [IntDecoder(), ToTensor(), Squeeze()],
                    })
    runner.epoch(a, t0, loader, counts, check_first, result_fd)


if __name__ == "__main__":
    sys.exit(runner.main(__doc__, prepare, run, out_help="prepare: where train.beton goes",
                         data_help="run: the directory prepare wrote", workers=-1,
                         workers_help="threads (prepare: default all cores; run: default 2)"))
