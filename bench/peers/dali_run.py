"""One shuffled epoch of an NVIDIA DALI pipeline on the CPU only (device_id=None), built as
DALI's ResNet-50 example builds its training pipeline: fn.readers.file over the
ImageFolder (random_shuffle, labels from the sorted class directories),
fn.decoders.image_random_crop on the CPU (decoding only the crop's region; area (0.08, 1),
aspect ratio (3/4, 4/3)), fn.resize to 224x224 (triangular filter), fn.flip
driven by fn.random.coin_flip, num_threads=W, read through DALI's PyTorch iterator
(DALIGenericIterator, reader_name, LastBatchPolicy.PARTIAL) as uint8 tensors
[B, 224, 224, 3] with int32 labels [B, 1]. With torch < 2 (Debian 12 has 1.13) the pipeline
uses DALI's classic executor, whose iterator copies each batch into a new torch tensor
(timed); with torch >= 2, DALI's default dynamic executor hands them over through DLPack.

    python3 bench/peers/dali_run.py prepare --images IMAGES --out DIR
    python3 bench/peers/dali_run.py run --images IMAGES [--data DIR] \
        [--batch-size 256] [--workers W] [--seed S] [--check]

DALI reads the ImageFolder itself, so prepare only records IMAGES in DIR/done.json and
run ignores --data.

run prints one JSON line: {"samples", "seconds", "first"} (seconds from just before the
pipeline is built to the end of the epoch; first: to the first batch). Everything else goes
to stderr. --check asserts the first batch's shape, dtype and shuffling, and the epoch's
count and labels against IMAGES.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


def prepare(a):
    counts = runner.class_counts(a.images)
    runner.write_stamp(a.out, {"images": os.path.abspath(a.images),
                               "samples": sum(counts.values())})
    runner.log("DALI reads %s directly; nothing to convert" % a.images)


def run(a, result_fd):
    counts = runner.class_counts(a.images)
    import torch
    from nvidia.dali import fn, pipeline_def, types
    from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

    @pipeline_def
    def train_pipeline(root):
        jpegs, labels = fn.readers.file(file_root=root, random_shuffle=True,
                                        pad_last_batch=True, name="Reader")
        # as DALI's ResNet-50 training example: decode only a random crop's region, then
        # resize it to 224x224
        images = fn.decoders.image_random_crop(jpegs, device="cpu", output_type=types.RGB,
                                               random_area=[0.08, 1.0],
                                               random_aspect_ratio=[3 / 4, 4 / 3],
                                               num_attempts=100)
        images = fn.resize(images, resize_x=224, resize_y=224,
                           interp_type=types.INTERP_TRIANGULAR)
        images = fn.flip(images, horizontal=fn.random.coin_flip(probability=0.5))
        return images, labels

    def check_first(x, y):
        runner.check_batch(x, y, (min(a.batch_size, sum(counts.values())), 224, 224, 3))

    # DALI's dynamic executor (its default) hands batches to torch with torch.from_dlpack
    # under `with torch.device(...)`, which needs torch >= 2; with an older torch (Debian 12
    # ships 1.13) the classic executor is used, whose iterator copies each batch into a
    # torch tensor.
    extra = {} if int(torch.__version__.split(".")[0]) >= 2 else {"exec_dynamic": False}
    t0 = time.time()
    pipe = train_pipeline(os.path.abspath(a.images), batch_size=a.batch_size,
                          num_threads=a.workers, device_id=None, seed=a.seed, **extra)
    pipe.build()
    loader = DALIGenericIterator(pipe, ["data", "label"], reader_name="Reader",
                                 last_batch_policy=LastBatchPolicy.PARTIAL)
    runner.epoch(a, t0, ((out[0]["data"], out[0]["label"]) for out in loader), counts,
                 check_first, result_fd)


if __name__ == "__main__":
    sys.exit(runner.main(__doc__, prepare, run, out_help="prepare: where to record IMAGES",
                         data_help="run: ignored (DALI reads IMAGES)",
                         workers_help="DALI's num_threads", needs_data=False))
