"""Each pipeline op against torchvision on real photographs (tests/python/photos.py).

Geometry (Resize, CenterCrop, RandomCrop's padding, flips) is compared with torchvision's
functional ops (v2's where torchvision has them) on PIL images, which are Pillow's: identical in `exact` mode, and within
the mean absolute error docs/TRANSFORMS.md gives in the default mode (DCT-domain
scaling). Colour (ColorJitter's three factors, Grayscale) is compared with torchvision's
tensor functional ops on the same uint8 image (the arithmetic of transforms.v2, which
torchvision's uint8 tensor path has always had), and Normalize and the dtype conversions
with torchvision's to_tensor + normalize and torch's own float16 and bfloat16 rounding:
all identical. Random ops are made deterministic (a crop as large as its padded image,
p=1, ranges of one value), so the reference needs no access to our generator.
"""
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import photos

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
try:  # transforms.v2 where this torchvision has it (0.15 on), else the v1 functional ops
    import torchvision.transforms.v2.functional as F
except ImportError:
    import torchvision.transforms.functional as F

TOOL = os.environ["TP_TRANSFORM_TOOL"]

# Bounds on the default mode's difference from Pillow, per op kind: (mean over images of
# the mean absolute error, worst image's), in levels of 0..255; docs/TRANSFORMS.md gives
# the measured values.
DEFAULT_BOUNDS = {"resize": (0.9, 2.2), "center": (0.9, 2.2), "pad": (0.9, 2.2)}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return photos.make(str(tmp_path_factory.mktemp("photos")))


def run(path, pipe, mode="exact", seed=0, epoch=0, sample=0):
    out = subprocess.run([TOOL, path, "pipe", pipe, mode, str(seed), str(epoch), str(sample)],
                         check=True, stdout=subprocess.PIPE).stdout
    header, data = out.split(b"\n", 1)
    dtype, *shape = header.decode().split()
    shape = tuple(int(s) for s in shape)
    if dtype == "bfloat16":
        t = torch.frombuffer(bytearray(data), dtype=torch.int16).view(torch.bfloat16)
        return t.reshape(shape).float().numpy(), dtype
    return np.frombuffer(data, dtype).reshape(shape), dtype


def rgb(path):
    return Image.open(path).convert("RGB")


def tensor(pil):
    return torch.from_numpy(np.array(pil)).permute(2, 0, 1).contiguous()


def mae(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def aspect_size(img, short):
    """Resize(short)'s (h, w) for this image, as torchvision computes it."""
    w, h = img.size
    return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)


# (our pipeline for an image, torchvision's reference on the PIL image)
GEOMETRY = {
    "resize_hw": (lambda img: "resize(160:224)",
                  lambda img: F.resize(img, [160, 224])),
    "resize_short_center": (lambda img: "resize(200) | center_crop(176:160)",
                            lambda img: F.center_crop(F.resize(img, 200), [176, 160])),
    "resize_max_size": (lambda img: "resize(180, max_size=200) | center_crop(150)",
                        lambda img: F.center_crop(F.resize(img, 180, max_size=200), [150])),
    "center_crop_past_edges": (lambda img: "resize(100:120) | center_crop(128:140)",
                               lambda img: F.center_crop(F.resize(img, [100, 120]), [128, 140])),
    "random_crop_padding": (
        lambda img: "resize(64:80) | random_crop(74:86, padding=3:5, fill=7)",
        lambda img: F.pad(F.resize(img, [64, 80]), [3, 5], fill=7)),
    "random_crop_ltrb": (
        lambda img: "resize(60:70) | random_crop(69:76, padding=1:2:5:7)",
        lambda img: F.pad(F.resize(img, [60, 70]), [1, 2, 5, 7])),
    "hflip": (lambda img: "resize(96:128) | hflip(1)",
              lambda img: F.hflip(F.resize(img, [96, 128]))),
    "crop_then_resize_flip": (lambda img: "center_crop(%d) | resize(112:96) | hflip(1)"
                              % min(img.size),
                              lambda img: F.hflip(F.resize(F.center_crop(img, min(img.size)),
                                                           [112, 96]))),
}


@pytest.mark.parametrize("name", sorted(GEOMETRY))
def test_geometry_exact_equals_torchvision_pil(images, name):
    ours_of, ref_of = GEOMETRY[name]
    for path in images:
        img = rgb(path)
        got, _ = run(path, ours_of(img), "exact")
        want = np.asarray(ref_of(img))
        assert got.shape == want.shape, (path, got.shape, want.shape)
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert diff.max() == 0, (path, name, int(diff.max()), float(diff.mean()))


@pytest.mark.parametrize("name,kind", [("resize_short_center", "center"),
                                       ("resize_hw", "resize"),
                                       ("random_crop_padding", "pad")])
def test_geometry_default_within_bounds(images, name, kind):
    ours_of, ref_of = GEOMETRY[name]
    errs = []
    for path in images:
        img = rgb(path)
        got, _ = run(path, ours_of(img), "scaled")
        errs.append(mae(got, np.asarray(ref_of(img))))
    mean_bound, worst_bound = DEFAULT_BOUNDS[kind]
    print("%s: mean %.3f worst %.3f" % (name, np.mean(errs), max(errs)))
    assert np.mean(errs) <= mean_bound and max(errs) <= worst_bound, errs


BASE = "resize(120:136)"  # every colour op runs on this exact-mode geometry


def base_tensor(path):
    return tensor(F.resize(rgb(path), [120, 136]))


COLOUR = {
    "brightness": ("color_jitter(brightness=1.37:1.37)",
                   lambda t: F.adjust_brightness(t, 1.37)),
    "brightness_dark": ("color_jitter(brightness=0.41:0.41)",
                        lambda t: F.adjust_brightness(t, 0.41)),
    "contrast": ("color_jitter(contrast=0.63:0.63)", lambda t: F.adjust_contrast(t, 0.63)),
    "contrast_up": ("color_jitter(contrast=1.8:1.8)", lambda t: F.adjust_contrast(t, 1.8)),
    "saturation": ("color_jitter(saturation=1.7:1.7)",
                   lambda t: F.adjust_saturation(t, 1.7)),
    "saturation_down": ("color_jitter(saturation=0.2:0.2)",
                        lambda t: F.adjust_saturation(t, 0.2)),
    "grayscale1": ("grayscale(1)", lambda t: F.rgb_to_grayscale(t, 1)),
    "grayscale3": ("grayscale(3)", lambda t: F.rgb_to_grayscale(t, 3)),
}


@pytest.mark.parametrize("name", sorted(COLOUR))
def test_colour_equals_torchvision_uint8(images, name):
    op, ref = COLOUR[name]
    worst = 0.0
    for path in images:
        got, dtype = run(path, BASE + " | " + op, "exact")
        want = ref(base_tensor(path)).permute(1, 2, 0).numpy()
        assert dtype == "uint8" and got.shape == want.shape, (got.shape, want.shape)
        diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
        # identical to torchvision <= 0.15's separate float32 products; later versions
        # fuse `a * f + b * (1 - f)` into one multiply-add, which rounds a few values the
        # other way (docs/TRANSFORMS.md)
        worst = max(worst, float((diff > 0).mean()))
        assert diff.max() <= 1 and (diff > 0).mean() <= COLOUR_ONE_LEVEL, \
            (path, name, int(diff.max()), int((diff > 0).sum()))
    print("%s: at most %.5f of the values differ (by one level)" % (name, worst))


COLOUR_ONE_LEVEL = 0.001  # the share of values allowed to differ, by one level

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.mark.parametrize("to,torch_dtype", [("to(float32)", torch.float32),
                                            ("to(float16, chw)", torch.float16),
                                            ("to(bfloat16)", torch.bfloat16),
                                            ("to(float32, hwc)", torch.float32)])
def test_normalize_and_dtype_equal_torch(images, to, torch_dtype):
    for path in images[:6]:
        got, dtype = run(path, BASE + " | normalize(mean=%s, std=%s) | %s"
                         % (":".join(map(str, MEAN)), ":".join(map(str, STD)), to), "exact")
        x = F.normalize(F.to_tensor(F.resize(rgb(path), [120, 136])), MEAN, STD)
        want = x.to(torch_dtype).float()
        if "hwc" in to:
            want = want.permute(1, 2, 0)
        want = want.numpy()
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_array_equal(np.asarray(got, np.float32), want)


def test_scaled_floats_equal_to_tensor(images):
    """to(float32) without normalize is torchvision's ToTensor (x / 255)."""
    for path in images[:4]:
        got, _ = run(path, BASE + " | to(float32)", "exact")
        want = F.to_tensor(F.resize(rgb(path), [120, 136])).numpy()
        np.testing.assert_array_equal(got, want)


def test_uint8_chw_is_hwc_transposed(images):
    for path in images[:4]:
        hwc, _ = run(path, BASE, "exact")
        chw, _ = run(path, BASE + " | to(uint8, chw)", "exact")
        assert np.array_equal(chw, hwc.transpose(2, 0, 1))


def test_old_names_are_their_pipelines(images):
    """rrc224 and center224 give the bytes of the pipelines they expand to."""
    for path in images[:6]:
        for name, pipe in [("rrc224", "random_resized_crop(224) | hflip(0.5)"),
                           ("center224", "resize(256) | center_crop(224)"),
                           ("rrc160", "RandomResizedCrop(160) | RandomHorizontalFlip()")]:
            a, _ = run(path, name, "scaled", 5, 2, 17)
            b, _ = run(path, pipe, "scaled", 5, 2, 17)
            assert np.array_equal(a, b), (path, name)
