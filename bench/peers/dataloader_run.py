"""One shuffled epoch of PyTorch's DataLoader, RandomResizedCrop(224) + RandomHorizontalFlip
to uint8 tensors [B, 3, 224, 224] with int64 labels, num_workers processes. Two ways to
build it, --path:

  tutorial  torchvision's ImageFolder (PIL decodes the whole image) with
            transforms.RandomResizedCrop(224) + RandomHorizontalFlip + PILToTensor, as
            torchvision's ImageNet classification reference and PyTorch's tutorials do;
  fast      the path torchvision's documentation recommends for speed today: a dataset of
            (path, label) whose items are torchvision.io.decode_jpeg(read_file(path),
            mode=RGB) (libjpeg-turbo straight to a uint8 tensor, no PIL), then
            transforms.v2 RandomResizedCrop(224, antialias=True) + RandomHorizontalFlip
            on the tensor.

    python3 bench/peers/dataloader_run.py run --images DIR [--path tutorial|fast] \
        [--batch-size 256] [--workers W] [--seed S] [--check]

Prints one JSON line: {"samples", "seconds", "first"}, timed from before the dataset and
DataLoader are built to the end of the epoch (seconds) and to the first batch (first).
--check asserts the first batch's shape, dtype and shuffling, and the epoch's count and
labels against DIR."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


class FastImages:
    """(path, label) items decoded by torchvision.io into uint8 CHW tensors, then
    transforms.v2 on the tensor."""

    def __init__(self, items):
        from torchvision.transforms import v2
        self.items = items
        self.t = v2.Compose([v2.RandomResizedCrop(224, antialias=True),
                             v2.RandomHorizontalFlip()])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from torchvision.io import ImageReadMode, decode_jpeg, read_file
        path, label = self.items[i]
        return self.t(decode_jpeg(read_file(path), mode=ImageReadMode.RGB)), label


def main():
    ap = runner.parser(__doc__, check_help="assert shapes, dtype, count, labels")
    ap.add_argument("--images", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--path", choices=("tutorial", "fast"), default="tutorial")
    a = ap.parse_args()
    counts = runner.class_counts(a.images)
    items = runner.list_imagefolder(a.images)
    result_fd = runner.stdout_to_stderr()
    import torch
    import torchvision
    from torchvision import transforms as T
    torch.manual_seed(a.seed)

    def check_first(x, y):
        assert x.dtype == torch.uint8, x.dtype
        assert tuple(x.shape) == (min(a.batch_size, len(items)), 3, 224, 224), x.shape
        assert y.shape == (x.shape[0],) and not y.is_floating_point(), (y.shape, y.dtype)

    t0 = time.time()
    if a.path == "tutorial":
        ds = torchvision.datasets.ImageFolder(a.images, transform=T.Compose([
            T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()]))
    else:
        ds = FastImages(items)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True,
                                         num_workers=a.workers)
    runner.epoch(a, t0, loader, counts, check_first, result_fd)


if __name__ == "__main__":
    sys.exit(main())
