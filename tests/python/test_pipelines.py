"""Pipelines through turbopump.Loader and a real daemon, on real photographs: the
transforms module's texts and errors, per-field pipelines and views (the bytes the daemon
sends are the pipeline's, view by view; views independent and reproducible; the same
with one or two decode threads), dtypes and layouts, and a pipeline change that takes
effect exactly at the epoch edge and survives resume. Run by tests/python/run.sh with
the package built."""
import os
import subprocess

import numpy as np
import pytest

import photos
import turbopump
from daemons import start_daemon
from turbopump import transforms as T

TP = os.environ["TURBOPUMP"]
TOOL = os.environ["TP_TRANSFORM_TOOL"]
try:
    import torch
except ImportError:
    torch = None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    root = d / "root"
    root.mkdir()
    files = photos.make(str(d / "img"))
    subprocess.run([TP, "pack", str(d / "img"), str(root / "photos"), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    socks = [str(d / "one.sock"), str(d / "two.sock")]
    daemons = [start_daemon(root, socks[0], 1), start_daemon(root, socks[1], 2)]
    yield {"files": files, "sock": socks[1], "sock1": socks[0], "root": root,
           "img": str(d / "img")}
    for p in daemons:
        p.terminate()
        p.wait()


def tool(path, pipe, seed, epoch, sample, view=0):
    out = subprocess.run([TOOL, path, "pipe", pipe, "scaled", str(seed), str(epoch),
                          str(sample), str(view)], check=True, stdout=subprocess.PIPE).stdout
    header, data = out.split(b"\n", 1)
    dtype, *shape = header.decode().split()
    if dtype == "bfloat16":
        dtype = "uint16"
    return np.frombuffer(data, dtype).reshape([int(s) for s in shape])


def host(x):
    """A batch field as a NumPy array (bfloat16 as its bits)."""
    if torch is not None and isinstance(x, torch.Tensor):
        if x.dtype == torch.bfloat16:
            x = x.view(torch.int16)
        return x.numpy()
    return np.asarray(x)


def ids(batch):
    return [int(i) for i in host(batch["__id__"])]


def epoch_bytes(loader, name):
    return [host(b[name]).copy() for b in loader]


# ---- the transforms module


def test_transforms_describe_torchvision_names():
    p = T.Compose([T.RandomResizedCrop(176, scale=(0.35, 1)), T.RandomHorizontalFlip(),
                   T.ColorJitter(0.4, 0.4, 0.4), T.Normalize((0.5, 0.4, 0.3), (0.2, 0.2, 0.2)),
                   T.ToDtype("float16")])
    assert str(p) == ("random_resized_crop(176, scale=0.35:1)"
                      " | hflip(0.5) | color_jitter(brightness=0.4, contrast=0.4, "
                      "saturation=0.4) | normalize(mean=0.5:0.4:0.3, std=0.2:0.2:0.2) | "
                      "to(float16)")
    text, dtype, layout, shape = T.parse(p)
    assert (dtype, layout, shape) == ("float16", "chw", (3, 176, 176))
    assert T.parse(text)[0] == text  # canonical text round-trips
    assert str(T.RandomResizedCrop(64, ratio=(0.5, 2))) == "random_resized_crop(64, ratio=0.5:2)"
    assert str(T.Resize(256) | T.CenterCrop((200, 180))) == "resize(256) | center_crop(200:180)"
    assert str(T.RandomCrop(32, padding=(1, 2), fill=9)) == "random_crop(32, padding=1:2, fill=9)"
    assert T.parse(T.Resize((64, 48)) | T.Grayscale(1) | T.ToTensor())[1:] == \
        ("float32", "chw", (1, 64, 48))
    assert T.parse(T.CenterCrop(40) | T.PILToTensor())[1:] == ("uint8", "chw", (3, 40, 40))
    if torch is not None:
        assert str(T.ToDtype(torch.bfloat16)) == "to(bfloat16)"
    assert str(T.ToDtype(np.float32, layout="hwc")) == "to(float32, hwc)"


@pytest.mark.parametrize("make,match", [
    (lambda: T.RandomResizedCrop(5), "size 5 is not in 8..4096"),
    (lambda: T.RandomResizedCrop(64, scale=(0.9, 0.2)), "scale"),
    (lambda: T.Resize(5000), "not in 8..4096"),
    (lambda: T.RandomHorizontalFlip(1.5), "p 1.5"),
    (lambda: T.ColorJitter(brightness=-1), "brightness"),
    (lambda: T.ColorJitter(hue=0.1), "hue"),
    (lambda: T.Normalize((0.5, 0.5), (1, 1, 1)), "1 or 3 values"),
    (lambda: T.Normalize(0.5, 0), "std"),
    (lambda: T.Grayscale(2), "1 or 3"),
    (lambda: T.Resize(64, interpolation="nearest"), "bilinear"),
    (lambda: T.RandomCrop(32, padding_mode="reflect"), "constant"),
    (lambda: T.ToDtype("int32"), "dtype"),
    (lambda: T.Compose([T.Normalize(0.5, 0.5), T.CenterCrop(30)]), "at 32: center_crop after"),
    (lambda: T.Compose([T.Resize(256)]), "depends on the image"),
    (lambda: T.parse(" | ".join(["center_crop(64)"] + ["hflip(0.5)"] * 100)), "at most 1023"),
])
def test_transforms_refuse_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_loader_refuses_bad_descriptions_with_the_position(env):
    with pytest.raises(ValueError, match=r"at 1: unknown op 'rezise'"):
        turbopump.Loader("photos", 4, transform="rezise(64)", socket=env["sock"])
    with pytest.raises(ValueError, match=r"at 25: p 7 is not in"):
        turbopump.Loader("photos", 4, views={"a": "center_crop(64) | hflip(7)"},
                         socket=env["sock"])
    with pytest.raises(turbopump.Error, match="no field 'png'"):
        turbopump.Loader("photos", 4, views={"a": ("png", "center_crop(64)")},
                         socket=env["sock"])
    with pytest.raises(TypeError, match="torchvision transform"):
        T.Compose([T.CenterCrop(64), object()])
    loader = turbopump.Loader("photos", 4, socket=env["sock"])
    with pytest.raises(ValueError, match="unknown op"):
        loader.set_transforms("blur(3)")
    assert loader.pipelines["transform"] == "rrc224"  # unchanged


# ---- what the daemon sends


PIPES = [
    T.Compose([T.RandomResizedCrop((96, 128), scale=(0.35, 1)), T.RandomHorizontalFlip(),
               T.ColorJitter(0.4, 0.4, 0.4)]),
    T.Compose([T.Resize(80), T.RandomCrop(72, padding=4, fill=3), T.Grayscale(3),
               T.Normalize((0.5, 0.4, 0.3), (0.25, 0.2, 0.3)), T.ToDtype("bfloat16")]),
    "resize(70:90) | center_crop(64) | to(float16, hwc)",
]


@pytest.mark.parametrize("k", range(len(PIPES)))
def test_field_pipeline_bytes_are_the_pipelines(env, k):
    pipe = T.describe(PIPES[k])
    loader = turbopump.Loader("photos", 5, seed=21, socket=env["sock"],
                              transforms={"jpg": pipe})
    _, dtype, layout, shape = T.parse(pipe)
    for epoch in range(2):
        seen = []
        for batch in loader:
            x = host(batch["jpg"])
            assert x.shape[1:] == shape
            if torch is not None and dtype == "bfloat16":
                assert batch["jpg"].dtype == torch.bfloat16
            for j, i in enumerate(ids(batch)):
                want = tool(env["files"][i], pipe, 21, epoch, i)
                assert np.array_equal(x[j].view(want.dtype), want), (k, epoch, i)
            assert "cls" in batch  # other fields pass through
            seen += ids(batch)
        assert sorted(seen) == list(range(len(env["files"])))


def test_views_are_independent_reproducible_and_decoded_once(env):
    glob = T.RandomResizedCrop(96, scale=(0.4, 1)) | T.RandomHorizontalFlip() | \
        T.ColorJitter(0.4, 0.4, 0.2)
    local = T.RandomResizedCrop(48, scale=(0.05, 0.4)) | T.RandomHorizontalFlip()
    views = {"global0": glob, "global1": glob, "local0": local, "local1": local,
             "local2": ("jpg", local)}
    opts = dict(batch_size=4, seed=5, views=views)
    a = turbopump.Loader("photos", socket=env["sock"], **opts)
    b = turbopump.Loader("photos", socket=env["sock1"], **opts)  # one decode thread
    for ba, bb in zip(a, b):
        assert set(ba) >= set(views) and "jpg" not in ba and "cls" in ba
        for name in views:
            assert np.array_equal(host(ba[name]), host(bb[name])), name
        assert host(ba["global0"]).shape == (4, 96, 96, 3)
        assert host(ba["local2"]).shape == (4, 48, 48, 3)
        # each view draws its own crop: equal views would mean shared randomness
        assert not np.array_equal(host(ba["global0"]), host(ba["global1"]))
        assert not np.array_equal(host(ba["local0"]), host(ba["local1"]))
        assert ids(ba) == ids(bb)
    # the field alone is view 0: a view-0 pipeline matches its separate decode exactly
    # where the other views need no finer scale (here: one view)
    one = turbopump.Loader("photos", 4, seed=5, views={"g": glob}, socket=env["sock"])
    batch = next(iter(one))
    for j, i in enumerate(ids(batch)):
        assert np.array_equal(host(batch["g"])[j], tool(env["files"][i], str(glob), 5, 0, i))


def test_seekable_jpegs_give_the_same_batches(env):
    """pack --jpeg-seek re-encodes the photographs with restart markers; the daemon then
    decodes only the segments each crop touches, and every batch holds the bytes the
    files as they were give, for random crops at every DCT scale, centre crops, views."""
    out = subprocess.run([TP, "pack", env["img"], str(env["root"] / "photos_seek"),
                          "--jpeg-seek=2"], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    assert "jpeg-seek: " in out, out
    pipes = [{"jpg": T.describe(T.RandomResizedCrop(224) | T.RandomHorizontalFlip())},
             {"jpg": "random_resized_crop(40, scale=0.05:0.5)"},
             {"jpg": "resize(256) | center_crop(224)"}]
    for transforms in pipes:
        opts = dict(batch_size=4, seed=8, socket=env["sock"], transforms=transforms)
        a = turbopump.Loader("photos", **opts)
        b = turbopump.Loader("photos_seek", **opts)
        for epoch in range(2):
            for ba, bb in zip(a, b):
                assert ids(ba) == ids(bb)
                assert np.array_equal(host(ba["jpg"]), host(bb["jpg"])), (transforms, epoch)
    views = {"g": T.RandomResizedCrop(96, scale=(0.4, 1)), "l": T.RandomResizedCrop(32, scale=(0.05, 0.3))}
    a = turbopump.Loader("photos", 4, seed=3, views=views, socket=env["sock"])
    b = turbopump.Loader("photos_seek", 4, seed=3, views=views, socket=env["sock"])
    for ba, bb in zip(a, b):
        for name in views:
            assert np.array_equal(host(ba[name]), host(bb[name])), name


def test_field_kept_beside_its_views(env):
    loader = turbopump.Loader("photos", 3, seed=2, fields=["jpg", "cls"],
                              transforms={"jpg": "center_crop(64)"},
                              views={"small": "resize(32:32)"}, socket=env["sock"])
    batch = next(iter(loader))
    assert host(batch["jpg"]).shape == (3, 64, 64, 3)
    assert host(batch["small"]).shape == (3, 32, 32, 3)


# ---- changing the pipeline between epochs


def small(n):
    return T.Compose([T.RandomResizedCrop(n), T.RandomHorizontalFlip()])


def test_set_transforms_takes_effect_at_the_epoch_edge(env):
    loader = turbopump.Loader("photos", 4, seed=9, transform=small(32), socket=env["sock"])
    shapes = []
    for k, batch in enumerate(loader):
        shapes.append(host(batch["jpg"]).shape[1])
        if k == 0:  # during epoch 0: the epoch finishes with 32
            loader.set_transforms(small(48))
    for batch in loader:
        shapes.append(host(batch["jpg"]).shape[1])
    assert shapes == [32, 32, 32, 48, 48, 48]
    loader.set_transforms(transforms={"jpg": "center_crop(40)"})  # between epochs: now
    assert loader.pipelines["transforms"] == {"jpg": "center_crop(40)"}
    batch = next(iter(loader))
    assert host(batch["jpg"]).shape[1:] == (40, 40, 3)
    assert batch["__epoch__"] == 2


def test_pipeline_change_survives_resume(env):
    opts = dict(batch_size=4, seed=13, socket=env["sock"])

    def run(loader, stop_at=None):
        out = []
        for epoch in range(loader.state_dict()["epoch"], 3):
            for batch in loader:
                out.append((batch["__epoch__"], ids(batch), host(batch["jpg"]).copy()))
                if batch["__epoch__"] == 0 and len(out) == 1:
                    loader.set_transforms(small(40))  # from epoch 1
                if stop_at is not None and len(out) == stop_at:
                    return out, loader.state_dict()
        return out, None

    want, _ = run(turbopump.Loader("photos", transform=small(24), **opts))
    assert [w[2].shape[1] for w in want] == [24] * 3 + [40] * 6
    for stop in (2, 4):  # mid-epoch 0 with the change pending; mid-epoch 1 after it
        first, state = run(turbopump.Loader("photos", transform=small(24), **opts), stop)
        assert state["pipelines"]["transform"] == (str(small(24)) if stop == 2
                                                   else str(small(40)))
        assert ("pending_pipelines" in state) == (stop == 2)
        resumed = turbopump.Loader("photos", transform="rrc224", **opts)  # overridden
        resumed.load_state_dict(state)
        rest = []
        for epoch in range(state["epoch"], 3):
            for batch in resumed:
                rest.append((batch["__epoch__"], ids(batch), host(batch["jpg"]).copy()))
        got = first + rest
        assert len(got) == len(want)
        for (ge, gi, gx), (we, wi, wx) in zip(got, want):
            assert (ge, gi) == (we, wi) and np.array_equal(gx, wx)
    # a state from before pipelines were recorded keeps the loader's own
    old = turbopump.Loader("photos", transform=small(24), **opts)
    old.load_state_dict({"seed": 13, "epoch": 1, "batch": 0, "rank": 0, "world_size": 1})
    assert host(next(iter(old))["jpg"]).shape[1] == 24
