"""An ImageFolder of JPEGs cut from real photographs, for measuring loaders on camera
content (whose entropy decoding costs differ from generated images'):

    python3 bench/real_photos.py OUT [--samples N] [--classes C] [--seed S] [--source DIR]

The photographs are the colour ones that scikit-image ships in skimage/data (astronaut,
chelsea, coffee, rocket, ...; `pip install scikit-image`), or every JPEG/PNG of at least
400x300 in --source DIR. Each sample is a random window of one of them (40-100% of its
short side, aspect 4:3 either way), resized to 500x375 or 375x500 with Pillow's bicubic
filter and saved as a quality-90 JPEG, OUT/classNNNN/NNNNNNN.jpg, samples spread evenly
over C classes. OUT is replaced."""
import argparse
import glob
import os
import random
import shutil
import sys

from PIL import Image

MIN_W, MIN_H = 400, 300


def sources(source_dir):
    if source_dir:
        root = source_dir
    else:
        try:
            import skimage
        except ImportError:
            sys.exit("error: no --source DIR and no scikit-image (pip install scikit-image)")
        root = os.path.join(os.path.dirname(skimage.__file__), "data")
    out = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*"), recursive=True)):
        if not path.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        try:
            with Image.open(path) as im:
                if im.mode not in ("RGB", "RGBA") or min(im.size) < MIN_H or \
                        max(im.size) < MIN_W:
                    continue
                out.append((path, im.convert("RGB")))
        except OSError:
            continue
    if not out:
        sys.exit("error: no colour photographs of at least %dx%d under %s" % (MIN_W, MIN_H,
                                                                               root))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--source", help="a directory of photographs instead of skimage's")
    a = ap.parse_args()
    photos = sources(a.source)
    rng = random.Random(a.seed)
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    total = 0
    for i in range(a.samples):
        _, im = photos[rng.randrange(len(photos))]
        w, h = im.size
        landscape = rng.random() < 0.5 if w == h else w > h
        ow, oh = (500, 375) if landscape else (375, 500)
        scale = rng.uniform(0.4, 1.0)
        cw = min(w, int(min(w, h * ow / oh) * scale))
        ch = min(h, int(cw * oh / ow))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = im.crop((x, y, x + cw, y + ch)).resize((ow, oh), Image.BICUBIC)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        d = os.path.join(a.out, "class%04d" % (i % a.classes))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "%07d.jpg" % i)
        crop.save(path, "JPEG", quality=90)
        total += os.path.getsize(path)
    print("%d JPEGs from %d photographs, mean %.1f KiB, in %s" % (
        a.samples, len(photos), total / a.samples / 1024, a.out))


if __name__ == "__main__":
    main()
