"""One epoch of PyTorch's DataLoader over torchvision's ImageFolder (PIL), the way
torchvision's ImageNet reference reads training data: RandomResizedCrop(224) +
RandomHorizontalFlip, uint8 tensors (PILToTensor), shuffled, num_workers processes.

    python3 bench/peers/dataloader_run.py run --images DIR --batch-size 256 --workers W \
        [--seed S] [--check]

Prints one JSON line: {"samples", "seconds", "first"}, timed from before the ImageFolder and
DataLoader are built to the end of the epoch (seconds) and to the first batch (first).
--check asserts the first batch's shape and dtype."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402


def main():
    ap = runner.parser(__doc__)
    ap.add_argument("--images", required=True)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    import torch
    import torchvision
    from torchvision import transforms as T
    torch.manual_seed(a.seed)
    t0 = time.time()
    ds = torchvision.datasets.ImageFolder(a.images, transform=T.Compose([
        T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.PILToTensor()]))
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True,
                                         num_workers=a.workers)
    first, n = None, 0
    for x, y in loader:
        if first is None:
            first = time.time() - t0
            if a.check:
                assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (3, 224, 224), x.shape
        n += int(y.shape[0])
    runner.write_result(sys.stdout.fileno(), n, time.time() - t0, first)


if __name__ == "__main__":
    sys.exit(main())
