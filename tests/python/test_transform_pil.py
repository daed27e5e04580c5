"""Decode and transforms against Pillow, the reference torchvision's PIL path uses.

At full decoding scale, turbopump's decode, crop+resize (RandomResizedCrop's geometry)
and resize+center-crop must equal Pillow's byte for byte. With DCT-domain scaling (what
turbopump does by default) the pixels differ; the mean absolute error is bounded here
and its measured value is written down in docs/TRANSFORMS.md.
"""
import os
import random
import subprocess
import tempfile

import numpy as np
import pytest
from PIL import Image

TOOL = os.environ["TP_TRANSFORM_TOOL"]
TURBOPUMP = os.environ["TURBOPUMP"]


@pytest.fixture(scope="module")
def images():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([TURBOPUMP, "gen", "imagefolder", d + "/img", "--samples", "12",
                        "--classes", "3", "--seed", "5"], check=True, stdout=subprocess.DEVNULL)
        yield sorted(os.path.join(r, f) for r, _, fs in os.walk(d + "/img") for f in fs)


def tool(*args):
    return subprocess.run([TOOL, *map(str, args)], check=True, stdout=subprocess.PIPE).stdout


def ours(*args, size=224):
    return np.frombuffer(tool(*args), np.uint8).reshape(size, size, 3).astype(np.int16)


def pil_center(img, size=224, resize=256):
    w, h = img.size
    if w <= h:
        rw, rh = resize, int(resize * h / w)
    else:
        rw, rh = int(resize * w / h), resize
    top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
    out = img.resize((rw, rh), Image.BILINEAR).crop((left, top, left + size, top + size))
    return np.asarray(out).astype(np.int16)


def test_full_decode_equals_pillow(images):
    for path in images:
        raw = tool(path, "none")
        header, pixels = raw.split(b"\n", 1)
        w, h = map(int, header.split())
        want = np.asarray(Image.open(path).convert("RGB"))
        assert (w, h) == (want.shape[1], want.shape[0])
        assert np.array_equal(np.frombuffer(pixels, np.uint8).reshape(h, w, 3), want)


def test_rrc_exact_equals_pillow(images):
    rng = random.Random(3)
    for path in images:
        img = Image.open(path).convert("RGB")
        for _ in range(5):
            w, h = rng.randint(1, img.width), rng.randint(1, img.height)
            x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
            want = np.asarray(img.crop((x, y, x + w, y + h)).resize((224, 224), Image.BILINEAR))
            got = ours(path, "rrc", 224, x, y, w, h, "exact")
            assert np.array_equal(got, want), (path, x, y, w, h, np.abs(got - want).max())


def test_center_exact_equals_pillow(images):
    for path in images:
        img = Image.open(path).convert("RGB")
        got = ours(path, "center", 224, "exact")
        assert np.array_equal(got, pil_center(img)), path


# (scales, output size) -> bounds on the mean and the worst crop's mean absolute error.
# The default scales (1/8, 1/4, 1/2, 1) decode a 224 crop of these ~500x375 images at full
# scale, so only the resampler's 14-bit weights differ from Pillow; at 96 pixels half and
# quarter scales come in. Every M/8 (allscales) decodes most crops at 5/8-7/8.
@pytest.mark.parametrize("mode,size,mean_bound,max_bound", [
    ("scaled", 224, 0.05, 0.5), ("scaled", 96, 3.0, 8.0), ("allscales", 224, 3.0, 8.0)])
def test_scaled_decode_error_is_small(images, mode, size, mean_bound, max_bound):
    rng = random.Random(4)
    errors = []
    for path in images:
        img = Image.open(path).convert("RGB")
        for _ in range(5):
            s = rng.uniform(0.08, 1.0) * img.width * img.height
            w = min(img.width, max(1, int(round((s * 4 / 3) ** 0.5))))
            h = min(img.height, max(1, int(round((s * 3 / 4) ** 0.5))))
            x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
            want = np.asarray(img.crop((x, y, x + w, y + h)).resize((size, size), Image.BILINEAR))
            got = ours(path, "rrc", size, x, y, w, h, mode, size=size)
            errors.append(np.abs(got - want).mean())
        got = ours(path, "center", size, mode, size=size)
        errors.append(np.abs(got - pil_center(img, size, size * 8 // 7)).mean())
    print("%s decode, %d px: mean absolute error vs Pillow: mean %.3f, max %.3f over %d crops"
          % (mode, size, np.mean(errors), np.max(errors), len(errors)))
    assert np.mean(errors) < mean_bound and np.max(errors) < max_bound
