"""JPEGs made from real photographs (scripts/photos.sh puts them in $TP_PHOTOS), in the
sizes and JPEG kinds datasets hold: baseline 4:2:0, 4:2:2 and 4:4:4, progressive,
restart intervals, greyscale, odd sizes, portrait and landscape, small and large."""
import os
import subprocess

import pytest
from PIL import Image

# (source, box as fractions of the source (x0, y0, x1, y1) or None, size, save options)
KINDS = [
    ("astronaut.png", None, (512, 512), dict(quality=90)),
    ("chelsea.png", None, (451, 300), dict(quality=85, subsampling=2)),
    ("coffee.png", None, (600, 400), dict(quality=95, subsampling=0)),
    ("rocket.jpg", None, (427, 640), dict(quality=90, subsampling=1)),
    ("motorcycle_left.png", None, (741, 500), dict(quality=90, progressive=True)),
    ("hubble_deep_field.jpg", (0.1, 0.1, 0.9, 0.8), (333, 251), dict(quality=80)),
    ("retina.jpg", None, (1411, 1411), dict(quality=75)),
    ("camera.png", None, (512, 512), dict(quality=90)),                  # greyscale
    ("brick.png", (0, 0, 0.6, 1), (181, 307), dict(quality=90)),        # greyscale, odd
    ("coffee.png", (0.2, 0.1, 0.7, 0.9), (97, 131), dict(quality=92)),  # small
    ("astronaut.png", (0, 0.2, 1, 0.8), (1024, 614), dict(quality=88, restart_marker_rows=2)),
    ("chelsea.png", (0.3, 0, 1, 1), (250, 331), dict(quality=90, progressive=True,
                                                      subsampling=0)),
]


def source_dir():
    d = os.environ.get("TP_PHOTOS", "")
    if not d or not os.path.isdir(d):
        pytest.fail("no photographs in TP_PHOTOS=%r: run scripts/photos.sh" % d)
    return d


def make(out_dir, kinds=KINDS):
    """Writes the JPEGs into out_dir (class000/..., an ImageFolder of one class per three
    images) and returns their paths in ImageFolder order."""
    src = source_dir()
    paths = []
    for i, (name, box, size, opts) in enumerate(kinds):
        img = Image.open(os.path.join(src, name))
        img = img.convert("L" if img.mode in ("L", "I;16") else "RGB")
        if box:
            w, h = img.size
            img = img.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))
        if img.size != size:
            img = img.resize(size, Image.BICUBIC)
        opts = dict(opts)
        rows = opts.pop("restart_marker_rows", None)
        d = os.path.join(out_dir, "class%03d" % (i // 3))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "%02d_%s.jpg" % (i, os.path.splitext(name)[0]))
        if rows:  # Pillow 9 cannot write restart markers: libjpeg-turbo's cjpeg can
            ppm = path + ".ppm"
            img.save(ppm)
            with open(path, "wb") as f:
                subprocess.run(["cjpeg", "-quality", str(opts.get("quality", 90)), "-restart",
                                str(rows), ppm], check=True, stdout=f)
            os.remove(ppm)
        else:
            img.save(path, "JPEG", **opts)
        paths.append(path)
    return sorted(paths)
