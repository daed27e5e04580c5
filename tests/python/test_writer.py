"""turbopump.Writer: samples of every value kind written from Python, read back field by
field (turbopump inspect) and through a daemon; the same samples give the same bytes;
schema mismatches, bad names and interrupted writers leave nothing behind. Run by
tests/python/run.sh with the package built."""
import io
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import turbopump
from daemons import start_daemon

TP = os.environ["TURBOPUMP"]


def inspect(ds, *args, text=True):
    return subprocess.run([TP, "inspect", str(ds), *map(str, args)], check=True,
                          stdout=subprocess.PIPE, text=text).stdout


def samples(n):
    rng = np.random.default_rng(1)
    for i in range(n):
        a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        yield {"jpg": Image.fromarray(a), "png": Image.fromarray(a), "cls": i % 3,
               "caption": "caption %d" % i, "raw": bytes([i]) * (i + 1),
               "emb": np.arange(6, dtype=">f4").reshape(2, 3) * i, "score": i / 8,
               "flag": bool(i % 2)}


def write(path, n=9, **kw):
    with turbopump.Writer(path, classes=["a", "b", "c"], **kw) as w:
        for s in samples(n):
            w.write(s)
    return w


def test_every_kind_round_trips(tmp_path):
    assert write(tmp_path / "ds").count == 9
    meta = json.loads(inspect(tmp_path / "ds", "--json"))
    assert [(f["name"], f["kind"], f.get("dtype"), f.get("shape")) for f in meta["fields"]] == [
        ("jpg", "image", None, None), ("png", "image", None, None), ("cls", "int64", None, None),
        ("caption", "bytes", None, None), ("raw", "bytes", None, None),
        ("emb", "tensor", "float32", [2, 3]), ("score", "tensor", "float64", [1]),
        ("flag", "int64", None, None)]
    assert meta["classes"] == ["a", "b", "c"]
    for i, s in enumerate(samples(9)):
        got = lambda f: inspect(tmp_path / "ds", "--sample", i, "--field", f, text=False)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(got("png")))), np.asarray(s["png"]))
        assert Image.open(io.BytesIO(got("jpg"))).format == "JPEG"
        assert int(got("cls")) == i % 3 and int(got("flag")) == i % 2
        assert got("caption") == s["caption"].encode() and got("raw") == s["raw"]
        assert got("emb") == s["emb"].astype("<f4").tobytes()
        assert np.frombuffer(got("score"), "<f8")[0] == i / 8
    subprocess.run([TP, "verify", str(tmp_path / "ds"), "--decode"], check=True,
                   stdout=subprocess.DEVNULL)


def test_served_by_the_daemon(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    write(root / "ds", 10, format="lmdb")
    sock = str(tmp_path / "d.sock")
    daemon = start_daemon(root, sock, 2)
    try:
        loader = turbopump.Loader("ds", 4, shuffle=False, socket=sock,
                                  transform="center_crop(16)", fields=["png", "cls", "emb"])
        seen = []
        for b in loader:
            for j, i in enumerate(np.asarray(b["__id__"])):
                s = list(samples(10))[int(i)]
                assert np.array_equal(np.asarray(b["png"])[j], np.asarray(s["png"])[4:20, 2:18])
                assert int(np.asarray(b["cls"])[j]) == int(i) % 3
                assert np.array_equal(np.asarray(b["emb"])[j], s["emb"].astype("<f4"))
                seen.append(int(i))
        assert seen == list(range(10))
    finally:
        daemon.terminate()
        daemon.wait()


def test_same_samples_same_bytes(tmp_path):
    write(tmp_path / "a", source="test")
    write(tmp_path / "b", source="test")
    for name in sorted(os.listdir(tmp_path / "a")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_mistakes_leave_nothing(tmp_path):
    w = turbopump.Writer(tmp_path / "ds")
    w.write({"cls": 1, "emb": np.zeros(3, np.float32)})
    with pytest.raises(KeyError, match="missing emb"):
        w.write({"cls": 2})
    with pytest.raises(ValueError, match="shape"):
        w.write({"cls": 2, "emb": np.zeros(4, np.float32)})
    with pytest.raises(TypeError, match="an integer"):
        w.write({"cls": 2.5, "emb": np.zeros(3, np.float32)})
    w.discard()
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    with pytest.raises(RuntimeError):
        with turbopump.Writer(tmp_path / "ds2") as w2:
            w2.write({"cls": 1})
            raise RuntimeError("the loop failed")
    assert not (tmp_path / "ds2").exists() and not (tmp_path / "ds2.partial").exists()
    with pytest.raises(turbopump.Error, match="field name"):
        turbopump.Writer(tmp_path / "ds3").write({"Bad Name": 1})
    write(tmp_path / "ds4")
    with pytest.raises(turbopump.Error, match="force"):
        write(tmp_path / "ds4")
    write(tmp_path / "ds4", force=True)
