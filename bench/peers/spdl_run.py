"""One shuffled epoch of SPDL (Meta's thread-based data loading), built as SPDL's image
example (examples/image_dataloading.py) builds its pipeline: PipelineBuilder with the
(path, label) list as source, .aggregate(BATCH), .pipe(decode, concurrency=W), .add_sink,
.build(num_threads=W); decoding is FFmpeg's (libavcodec's mjpeg decoder), in SPDL's native
code with the GIL released. Two ways to decode, --mode:

  example  as that example: spdl.io.load_image_batch(paths, width=224, height=224,
           pix_fmt="rgb24"), which scales each whole image into 224x224 (aspect ratio
           kept, padded with black: FFmpeg's scale + pad filters, bicubic), no crop, no
           flip. Cheaper than a RandomResizedCrop: nothing random, one batch call.
  rrc      RandomResizedCrop(224) (scale 0.08-1, ratio 3/4-4/3, torchvision's sampling of
           the box) + a random horizontal flip per image, as an FFmpeg filter graph given
           to spdl.io.decode_packets: crop=W:H:X:Y,scale=224:224:flags=bilinear[,hflip],
           format=rgb24 after spdl.io.demux_image (which gives the image's size); the
           frames of a batch are joined by spdl.io.convert_frames. FFmpeg decodes the
           whole image and crops the frame.

Batches reach the loop as uint8 tensors [B, 224, 224, 3] (spdl.io.to_torch) with int64
labels [B].

    python3 bench/peers/spdl_run.py prepare --images IMAGES --out DIR
    python3 bench/peers/spdl_run.py run --images IMAGES [--data DIR] [--mode example|rrc] \
        [--batch-size 256] [--workers W] [--seed S] [--check]

SPDL reads the ImageFolder's files itself, so prepare only records IMAGES in
DIR/done.json and run ignores --data. run prints one JSON line: {"samples", "seconds",
"first"} (seconds from just before the pipeline is built to the end of the epoch; first: to
the first batch). --check asserts the first batch's shape, dtype and shuffling, and the
epoch's count and labels against IMAGES.
"""
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402

SIZE = 224


def prepare(a):
    counts = runner.class_counts(a.images)
    runner.write_stamp(a.out, {"images": os.path.abspath(a.images),
                               "samples": sum(counts.values())})
    runner.log("SPDL reads %s directly; nothing to convert" % a.images)


def rrc_box(rng, w, h, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A RandomResizedCrop box (x, y, cw, ch) inside a w x h image, sampled as torchvision
    samples it: ten tries of an area fraction and a log-uniform aspect ratio, else the
    centre crop at the nearest allowed ratio."""
    area = w * h
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        r = math.exp(rng.uniform(lo, hi))
        cw, ch = int(round(math.sqrt(target * r))), int(round(math.sqrt(target / r)))
        if 0 < cw <= w and 0 < ch <= h:
            return rng.randint(0, w - cw), rng.randint(0, h - ch), cw, ch
    r = w / h
    if r < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif r > ratio[1]:
        cw, ch = int(round(h * ratio[1])), h
    else:
        cw, ch = w, h
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def run(a, result_fd):
    counts = runner.class_counts(a.images)
    items = runner.list_imagefolder(a.images)
    import torch
    import spdl.io
    from spdl.pipeline import PipelineBuilder

    def decode_example(batch):
        buf = spdl.io.load_image_batch([p for p, _ in batch], width=SIZE, height=SIZE,
                                       pix_fmt="rgb24", strict=True)
        return spdl.io.to_torch(buf), torch.tensor([y for _, y in batch], dtype=torch.int64)

    def decode_rrc(batch):
        # one RNG per batch, seeded from the run's seed and the batch's first item, so the
        # boxes do not depend on which thread decodes the batch
        rng = random.Random("%d:%s" % (a.seed, batch[0][0]))
        frames = []
        for path, _ in batch:
            packets = spdl.io.demux_image(path)
            x, y, cw, ch = rrc_box(rng, packets.width, packets.height)
            flt = "crop=%d:%d:%d:%d,scale=%d:%d:flags=bilinear%s,format=pix_fmts=rgb24" % (
                cw, ch, x, y, SIZE, SIZE, ",hflip" if rng.random() < 0.5 else "")
            frames.append(spdl.io.decode_packets(packets, filter_desc=flt))
        buf = spdl.io.convert_frames(frames)
        return spdl.io.to_torch(buf), torch.tensor([y for _, y in batch], dtype=torch.int64)

    def check_first(x, y):
        runner.check_batch(x, y, (min(a.batch_size, sum(counts.values())), SIZE, SIZE, 3))
        assert y.shape == (x.shape[0],) and y.dtype == torch.int64, (y.shape, y.dtype)

    t0 = time.time()
    order = list(items)
    random.Random(a.seed).shuffle(order)
    pipeline = (PipelineBuilder()
                .add_source(order)
                .aggregate(a.batch_size, drop_last=False)
                .pipe(decode_rrc if a.mode == "rrc" else decode_example,
                      concurrency=a.workers)
                .add_sink(3)
                .build(num_threads=a.workers))
    with pipeline.auto_stop():
        runner.epoch(a, t0, pipeline.get_iterator(), counts, check_first, result_fd)


def extra(ap):
    ap.add_argument("--mode", choices=("example", "rrc"), default="example",
                    help="example: load_image_batch to 224x224 as SPDL's image example; "
                         "rrc: RandomResizedCrop + flip through an FFmpeg filter")


if __name__ == "__main__":
    sys.exit(runner.main(__doc__, prepare, run, out_help="prepare: where to record IMAGES",
                         data_help="run: ignored (SPDL reads IMAGES)",
                         workers_help="SPDL's threads (build num_threads, pipe concurrency)",
                         needs_data=False, extra_args=extra))
