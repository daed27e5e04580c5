"""Trains a torchvision ResNet-18 on a generated ImageFolder, fed by turbopump.

    python3 examples/train_resnet.py                  # CPU, about a minute
    python3 examples/train_resnet.py --device cuda --size 224 --samples 20000

The first run generates the photographs and packs them (with the `turbopump` command:
$TURBOPUMP, else build/tools/turbopump, else turbopump on PATH). The loader starts a
private daemon for the dataset when none runs, so nothing else needs setting up; under
torchrun each process reads its own share (RANK / WORLD_SIZE). Every epoch prints the
loss, the accuracy on the training batches and the samples per second.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

import torch
import torchvision

import turbopump


def turbopump_command():
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "build", "tools", "turbopump")
    cmd = os.environ.get("TURBOPUMP") or (built if os.path.exists(built) else None) \
        or shutil.which("turbopump")
    if not cmd:
        sys.exit("train_resnet: no turbopump command (build it, or set TURBOPUMP)")
    return cmd


def prepare(data, samples, classes):
    dataset = os.path.join(data, "dataset")
    if os.path.exists(os.path.join(dataset, "manifest.json")):
        return dataset
    tp = turbopump_command()
    os.makedirs(data, exist_ok=True)
    images = os.path.join(data, "images")
    print("generating %d images in %s" % (samples, images), flush=True)
    subprocess.run([tp, "gen", "imagefolder", images, "--samples", str(samples), "--classes",
                    str(classes), "--seed", "1", "--force"], check=True)
    subprocess.run([tp, "pack", images, dataset, "--force", "--quiet"], check=True)
    os.environ.setdefault("TURBOPUMP_BIN", tp)  # for the private daemon
    return dataset


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="build/train-demo", help="where the dataset lives")
    ap.add_argument("--samples", type=int, default=640)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="RandomResizedCrop output size")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--socket", help="a running daemon's socket (default: start one)")
    args = ap.parse_args()
    os.environ.setdefault("TURBOPUMP_BIN", turbopump_command())
    dataset = prepare(args.data, args.samples, args.classes)
    torch.manual_seed(0)
    loader = turbopump.Loader(os.path.abspath(dataset) if not args.socket else "dataset",
                              args.batch_size, transform="rrc%d" % args.size,
                              output="float32", seed=1, socket=args.socket,
                              device=args.device)
    model = torchvision.models.resnet18(num_classes=args.classes).to(args.device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    print("ResNet-18 on %s: %d samples, %d batches of %d per epoch, %dx%d crops"
          % (args.device, loader.num_samples, len(loader), args.batch_size, args.size,
             args.size), flush=True)
    for epoch in range(args.epochs):
        loader.set_epoch(epoch)
        model.train()
        t0, seen, correct, total_loss = time.time(), 0, 0, 0.0
        for batch in loader:
            x, y = batch["jpg"], batch["cls"]
            out = model(x)
            loss = loss_fn(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += y.shape[0]
            correct += int((out.argmax(1) == y).sum())
            total_loss += loss.item() * y.shape[0]
        secs = time.time() - t0
        print("epoch %d: loss %.3f, accuracy %.1f%%, %d samples in %.1f s, %.0f samples/s"
              % (epoch, total_loss / seen, 100.0 * correct / seen, seen, secs, seen / secs),
              flush=True)
    loader.close()


if __name__ == "__main__":
    main()
