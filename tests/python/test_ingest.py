"""`turbopump pack` from the inputs users bring. WebDataset shards written by webdataset's
own ShardWriter (tests/data/wds, made by make.py there) packed and compared field by field
with what Python's tarfile reads from them; compressed shards, globs and brace lists;
--fields choosing and renaming; every kind of bad input giving one warning and losing
nothing else (or failing under --strict); output independent of --jobs. ImageFolder trees
of PNG (and PNG beside JPEG) packed, verified and served, pixel for pixel against Pillow.
Run by tests/python/run.sh with the package built."""
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
from PIL import Image

import turbopump
from daemons import start_daemon

TP = os.environ["TURBOPUMP"]
FIXTURE = os.path.join(os.path.dirname(__file__), "..", "data", "wds")
FIELDS = ["cls", "jpg", "json", "npy", "txt"]


def pack(*args, check=0):
    p = subprocess.run([TP, "pack", *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    assert p.returncode == check, p.stderr
    return p


def inspect(ds, *args, text=True):
    return subprocess.run([TP, "inspect", str(ds), *map(str, args)], check=True,
                          stdout=subprocess.PIPE, text=text).stdout


def field(ds, i, name):
    return inspect(ds, "--sample", i, "--field", name, text=False)


def warnings(p):
    return [l for l in p.stderr.splitlines() if "warning: skipping" in l]


def tar_samples(paths):
    """The fixture's samples as tarfile reads them: (key, {extension: bytes})."""
    out = []
    for path in paths:
        with tarfile.open(path) as t:
            for m in t.getmembers():
                key, ext = m.name.split(".", 1)
                if not out or out[-1][0] != key:
                    out.append((key, {}))
                out[-1][1][ext] = t.extractfile(m).read()
    return out


def shards():
    return sorted(os.path.join(FIXTURE, f) for f in os.listdir(FIXTURE) if f.endswith(".tar"))


def test_webdataset_shards_field_by_field(tmp_path):
    p = pack(FIXTURE, tmp_path / "ds")
    assert "packed 7 samples" in p.stdout and "skipped 0 inputs" in p.stdout
    assert "'seg.png' is in 1 of 7 samples" in p.stderr  # not every sample has it
    meta = json.loads(inspect(tmp_path / "ds", "--json"))
    assert [f["name"] for f in meta["fields"]] == FIELDS
    kinds = {f["name"]: f["kind"] for f in meta["fields"]}
    assert kinds == {"cls": "int64", "jpg": "image", "json": "bytes", "npy": "tensor",
                     "txt": "bytes"}
    npy = [f for f in meta["fields"] if f["name"] == "npy"][0]
    assert (npy["dtype"], npy["shape"]) == ("float32", [2, 3])
    assert meta["source"].startswith("wds:")
    samples = tar_samples(shards())
    assert len(samples) == 7
    for i, (key, exts) in enumerate(samples):
        assert field(tmp_path / "ds", i, "jpg") == exts["jpg"], key
        assert int(field(tmp_path / "ds", i, "cls")) == int(exts["cls"]), key
        assert field(tmp_path / "ds", i, "json") == exts["json"], key
        assert field(tmp_path / "ds", i, "txt") == exts["txt"], key
        want = np.load(io.BytesIO(exts["npy"]))
        assert field(tmp_path / "ds", i, "npy") == want.tobytes(), key
    subprocess.run([TP, "verify", str(tmp_path / "ds"), "--decode"], check=True,
                   stdout=subprocess.DEVNULL)


def test_fields_choose_rename_and_require(tmp_path):
    p = pack(FIXTURE, tmp_path / "ds", "--fields", "jpg:image,seg.png:mask,cls")
    assert "packed 1 samples" in p.stdout
    assert len(warnings(p)) == 6 and all("no 'seg.png' member" in w for w in warnings(p))
    meta = json.loads(inspect(tmp_path / "ds", "--json"))
    assert [(f["name"], f["kind"]) for f in meta["fields"]] == [
        ("image", "image"), ("mask", "image"), ("cls", "int64")]
    key, exts = tar_samples(shards())[5]
    assert field(tmp_path / "ds", 0, "mask") == exts["seg.png"]
    p = pack(FIXTURE, tmp_path / "bad", "--fields", "jpg,caption", check=1)
    assert "no field 'caption'" in p.stderr
    assert not (tmp_path / "bad").exists()


def test_compressed_shards_globs_and_brace_lists(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for s in shards():
        with open(s, "rb") as f, gzip.open(src / (os.path.basename(s) + ".gz"), "wb") as g:
            g.write(f.read())
    pack(FIXTURE, tmp_path / "plain")
    want = [inspect(tmp_path / "plain", "--sample", i) for i in range(7)]
    for spec in [f"{src}/shard-{{0000..0001}}.tar.gz", f"{src}/shard-*.tar.gz",
                 f"{FIXTURE}/shard-{{0000,0001}}.tar"]:
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        assert "packed 7 samples" in pack(spec, out).stdout, spec
        assert [inspect(out, "--sample", i) for i in range(7)] == want, spec
    p = pack(f"{src}/nothing-*.tar", tmp_path / "none", check=1)
    assert "no file matches" in p.stderr


def test_output_does_not_depend_on_jobs(tmp_path):
    pack(FIXTURE, tmp_path / "a", "--jobs", 1, "--zstd", 3)
    pack(FIXTURE, tmp_path / "b", "--jobs", 4, "--zstd", 3)
    for name in sorted(os.listdir(tmp_path / "a")):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def member(t, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def good(i):
    with tarfile.open(shards()[0]) as t:
        jpg = t.extractfile("s0000.jpg").read()
    buf = io.BytesIO()
    np.save(buf, np.full((2, 3), i, np.float32))
    return {"jpg": jpg, "cls": str(i % 3).encode(), "npy": buf.getvalue()}


def write_shard(path, samples):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as t:
        for key, exts in samples:
            for ext, data in exts.items():
                member(t, f"{key}.{ext}", data)


def test_bad_inputs_one_warning_each(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    bad_npy = io.BytesIO()
    np.save(bad_npy, np.zeros((3, 2), np.float32))
    samples = [(f"k{i:02d}", good(i)) for i in range(12)]
    samples[1][1]["cls"] = b"seven"                       # not an integer
    samples[2][1]["jpg"] = b"not a jpeg at all"           # not an image
    del samples[3][1]["npy"]                              # a field missing
    samples[4][1]["npy"] = bad_npy.getvalue()             # another shape
    samples[5][1]["jpg"] = good(5)["jpg"][:-20]           # a truncated JPEG
    write_shard(src / "a-0.tar", samples[:8])
    with tarfile.open(src / "a-0.tar", "a") as t:
        member(t, "README", b"no key")                    # a member without a key
        member(t, "__meta__", b"metadata is skipped silently")
    with tarfile.open(src / "a-1.tar", "w") as t:          # one key twice: a.jpg, a.JPG
        for ext, data in good(8).items():
            member(t, f"k08.{ext}", data)
        member(t, "k08.JPG", good(8)["jpg"])
        for key, exts in samples[9:]:
            for ext, data in exts.items():
                member(t, f"{key}.{ext}", data)
    write_shard(src / "a-2.tar", [(f"t{i}", good(20 + i)) for i in range(4)])
    whole = (src / "a-2.tar").read_bytes()
    (src / "a-2.tar").write_bytes(whole[:3 * 1024 + 512 + 100])  # cut inside sample 1
    p = pack(f"{src}/a-*.tar", tmp_path / "ds", "--fields", "jpg,cls,npy")
    w = warnings(p)
    for needle in ["k01: cls: not an integer", "k02: jpg: not a JPEG", "k03: no 'npy' member",
                   "k04: npy: array of float32 (3, 2), not float32 (2, 3)",
                   "k05: jpg: truncated JPEG", "member 'README' has no key",
                   "two 'jpg' members in one sample", "a-2.tar"]:
        assert sum(needle in l for l in w) == 1, (needle, w)
    assert len(w) == 8, w
    kept = [k for k, _ in samples if k not in ("k01", "k02", "k03", "k04", "k05", "k08")]
    assert f"packed {len(kept) + 1} samples" in p.stdout  # and t0 before the damage
    labels = [int(field(tmp_path / "ds", i, "cls")) for i in range(len(kept) + 1)]
    assert labels == [int(k[1:]) % 3 for k in kept] + [20 % 3]
    p = pack(f"{src}/a-*.tar", tmp_path / "strict", "--strict", check=1)
    assert "(--strict)" in p.stderr
    assert not (tmp_path / "strict").exists() and not (tmp_path / "strict.partial").exists()


# ---- ImageFolder with PNG

def png_tree(root, jpeg_too=False):
    rng = np.random.default_rng(5)
    files = []
    for c, mode in enumerate(["RGB", "RGBA", "L", "P", "LA"]):
        d = os.path.join(root, f"c{c}")
        os.makedirs(d)
        for k in range(2):
            a = rng.integers(0, 256, (40 + 2 * k, 36, 3), dtype=np.uint8)
            img = Image.fromarray(a).convert(mode) if mode != "P" else \
                Image.fromarray(a).quantize(64)
            path = os.path.join(d, f"{k}.png")
            img.save(path)
            files.append(path)
        if jpeg_too:
            path = os.path.join(d, "j.jpg")
            Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(path)
            files.append(path)
    return files


@pytest.mark.parametrize("jpeg_too", [False, True])
def test_png_imagefolder_packed_verified_and_served(tmp_path, jpeg_too):
    files = png_tree(str(tmp_path / "img"), jpeg_too)
    root = tmp_path / "root"
    root.mkdir()
    p = pack(tmp_path / "img", root / "ds", "--jobs", 2)
    assert f"packed {len(files)} samples" in p.stdout
    name = "image" if jpeg_too else "png"
    meta = json.loads(inspect(root / "ds", "--json"))
    assert [(f["name"], f["kind"]) for f in meta["fields"]] == [(name, "image"),
                                                                 ("cls", "int64")]
    subprocess.run([TP, "verify", str(root / "ds"), "--decode"], check=True,
                   stdout=subprocess.DEVNULL)
    sock = str(tmp_path / "d.sock")
    daemon = start_daemon(root, sock, 2)
    try:
        loader = turbopump.Loader("ds", 4, shuffle=False, socket=sock,
                                  transform="center_crop(32)")
        seen = 0
        for batch in loader:
            x = np.asarray(batch[name])
            for j, i in enumerate(np.asarray(batch["__id__"])):
                path = files[int(i)]
                want = np.asarray(Image.open(path).convert("RGB"))
                h, w = want.shape[:2]
                top, left = (h - 32) // 2, (w - 32) // 2
                want = want[top:top + 32, left:left + 32]
                if path.endswith(".png"):
                    assert np.array_equal(x[j], want), path
                else:  # a JPEG: libjpeg-turbo's decode, not Pillow's build of it
                    assert np.abs(x[j].astype(int) - want).mean() < 1.5, path
                seen += 1
        assert seen == len(files)
    finally:
        daemon.terminate()
        daemon.wait()


# ---- packing in parts, merged

def samples_of(ds):
    n = json.loads(inspect(ds, "--json"))["samples"]
    return [inspect(ds, "--sample", i) for i in range(n)]


@pytest.mark.parametrize("kind,parts,opts", [("wds", 3, []), ("wds", 10, ["--format", "lmdb"]),
                                              ("png", 4, ["--zstd", "3", "--zstd-dict",
                                                          "--zstd-dict-size", "2K"]),
                                              ("tfrecord", 4, []), ("listing", 3, [])])
def test_parts_merged_equal_one_pack(tmp_path, kind, parts, opts):
    src = {"wds": FIXTURE, "tfrecord": TFR}.get(kind)
    if kind == "listing":
        files = png_tree(str(tmp_path / "img"))
        with open(tmp_path / "list.jsonl", "w") as f:
            for i, path in enumerate(files):
                f.write(json.dumps({"path": path, "label": f"l{i % 3}", "w": i / 4}) + "\n")
        src = tmp_path / "list.jsonl"
    if kind == "png":
        png_tree(str(tmp_path / "img"), True)
        src = tmp_path / "img"
    pack(src, tmp_path / "whole", *opts)
    names = []
    for i in reversed(range(parts)):  # the order of the parts does not matter
        names.append(tmp_path / f"part{i}")
        p = pack(src, names[-1], "--part", f"{i}/{parts}", *opts)
        assert f"(part {i} of {parts})" in p.stdout
    m = subprocess.run([TP, "merge", *map(str, names), str(tmp_path / "merged")],
                       stdout=subprocess.PIPE, text=True, check=True)
    assert "merged" in m.stdout
    assert samples_of(tmp_path / "merged") == samples_of(tmp_path / "whole")
    subprocess.run([TP, "verify", str(tmp_path / "merged"), "--decode"], check=True,
                   stdout=subprocess.DEVNULL)
    whole = json.loads(inspect(tmp_path / "whole", "--json"))
    merged = json.loads(inspect(tmp_path / "merged", "--json"))
    for key in ["fields", "classes", "source", "format", "samples"]:
        assert merged[key] == whole[key], key
    # the shards were linked, not copied: the parts still open and share the inodes
    part_inodes = {os.stat(os.path.join(n, f)).st_ino for n in names for f in os.listdir(n)
                   if f.startswith("shard-")}
    merged_inodes = {os.stat(tmp_path / "merged" / f).st_ino
                     for f in os.listdir(tmp_path / "merged") if f.startswith("shard-")}
    assert merged_inodes and merged_inodes <= part_inodes
    subprocess.run([TP, "verify", str(names[0])], check=True, stdout=subprocess.DEVNULL)


def test_merge_refuses_what_does_not_fit(tmp_path):
    for i in range(3):
        pack(FIXTURE, tmp_path / f"p{i}", "--part", f"{i}/3")
    pack(FIXTURE, tmp_path / "lmdb0", "--part", "0/3", "--format", "lmdb")
    pack(FIXTURE, tmp_path / "whole")

    def merge(*names):
        return subprocess.run([TP, "merge", *[str(tmp_path / n) for n in names],
                               str(tmp_path / "out")], stderr=subprocess.PIPE, text=True)
    for names, why in [(["p0", "p1"], "part 2 is missing"), (["p0", "p0", "p1"], "both part 0"),
                       (["lmdb0", "p1", "p2"], "shard format"),
                       (["p0", "p1", "whole"], "is not"), (["p0", "p1", "nothing"], "nothing")]:
        r = merge(*names)
        assert r.returncode == 1 and why in r.stderr, (names, r.stderr)
        assert not (tmp_path / "out").exists()
    r = merge("whole", "whole")  # plain datasets concatenate
    assert r.returncode == 0, r.stderr
    assert samples_of(tmp_path / "out")[7:] != [] and len(samples_of(tmp_path / "out")) == 14
    p = pack(FIXTURE, tmp_path / "x", "--part", "3/3", check=2)
    assert "--part must be I/N" in p.stderr


# ---- listings

def test_csv_and_jsonl_listings(tmp_path):
    files = png_tree(str(tmp_path / "img"), True)[:6]
    rel = [os.path.relpath(f, tmp_path) for f in files]
    with open(tmp_path / "list.csv", "w") as f:
        f.write("path,label,caption,score,count\n")
        for i, r in enumerate(rel):
            f.write(f'{r},{"dog" if i % 2 else "cat"},"a, ""caption"" {i}",{i * 0.5},{i}\n')
        f.write("img/c0/nothing.png,cat,x,1.5,3\n")   # a missing file
        f.write(f"{rel[0]},,no label,1.5,3\n")        # a missing value
    p = pack(tmp_path / "list.csv", tmp_path / "csv")
    assert "packed 6 samples" in p.stdout and "from 2 classes" in p.stdout
    w = warnings(p)
    assert len(w) == 2, w
    assert any("list.csv:8: img/c0/nothing.png: cannot read" in l for l in w), w
    assert any("list.csv:9: no value for 'label'" in l for l in w), w
    meta = json.loads(inspect(tmp_path / "csv", "--json"))
    assert meta["classes"] == ["cat", "dog"]
    assert [(f["name"], f["kind"]) for f in meta["fields"]] == [
        ("image", "image"), ("cls", "int64"), ("caption", "bytes"), ("score", "tensor"),
        ("count", "int64")]
    for i, path in enumerate(files):
        assert field(tmp_path / "csv", i, "image") == open(path, "rb").read()
        assert int(field(tmp_path / "csv", i, "cls")) == i % 2
        assert field(tmp_path / "csv", i, "caption") == f'a, "caption" {i}'.encode()
        assert np.frombuffer(field(tmp_path / "csv", i, "score"), "<f8")[0] == i * 0.5
        assert int(field(tmp_path / "csv", i, "count")) == i
    with open(tmp_path / "list.jsonl", "w") as f:
        for i, r in enumerate(rel):
            f.write(json.dumps({"file": r, "target": i % 3, "Meta Data": {"k": i}}) + "\n")
        f.write("\n")
    pack(tmp_path / "list.jsonl", tmp_path / "jsonl", "--fields", "image:img,cls,meta_data")
    for i, path in enumerate(files):
        assert field(tmp_path / "jsonl", i, "img") == open(path, "rb").read()
        assert int(field(tmp_path / "jsonl", i, "cls")) == i % 3
        assert json.loads(field(tmp_path / "jsonl", i, "meta_data")) == {"k": i}
    (tmp_path / "bad.csv").write_text('path,label\n"img/a.png,1\n')
    assert "bad.csv" in pack(tmp_path / "bad.csv", tmp_path / "x", check=1).stderr
    (tmp_path / "bad.jsonl").write_text('{"path": "a.png"}\n{"path": \n')
    assert "bad.jsonl:2" in pack(tmp_path / "bad.jsonl", tmp_path / "x", check=1).stderr
    (tmp_path / "nopath.csv").write_text("name,label\na.png,1\n")
    assert "no path column" in pack(tmp_path / "nopath.csv", tmp_path / "x", check=1).stderr


# ---- TFRecord: a small wire-format reader and writer of tf.train.Example, to check the
# fixtures (written by the `tfrecord` package) and to make damaged ones

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(data):
    n = len(data).to_bytes(8, "little")
    return n + crc32c(n).to_bytes(4, "little") + data + crc32c(data).to_bytes(4, "little")


def frames(blob):
    out, i = [], 0
    while i < len(blob):
        n = int.from_bytes(blob[i:i + 8], "little")
        out.append(blob[i + 12:i + 12 + n])
        i += 16 + n
    return out


def varint(b, i):
    v = s = 0
    while True:
        v |= (b[i] & 0x7F) << s
        s += 7
        i += 1
        if b[i - 1] < 0x80:
            return v, i


def fields_of(b):
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        if tag & 7 == 2:
            n, i = varint(b, i)
            yield tag >> 3, b[i:i + n]
            i += n
        else:
            v, i = varint(b, i)
            yield tag >> 3, v


def example(b):
    out = {}
    for _, features in fields_of(b):
        for _, entry in fields_of(features):
            e = dict(fields_of(entry))
            kind, body = next(fields_of(e[2]))
            vals = [v for _, v in fields_of(body)]
            if kind == 2:
                vals = list(np.frombuffer(b"".join(vals), "<f4"))
            elif kind == 3:
                packed = b"".join(vals)
                vals, i = [], 0
                while i < len(packed):
                    v, i = varint(packed, i)
                    vals.append(v - (1 << 64) if v >> 63 else v)
            out[e[1].decode()] = vals
    return out


def encode_varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
        v >>= 7
        if not v:
            return out


def ld(field, data):
    return encode_varint(field << 3 | 2) + encode_varint(len(data)) + data


def encode_example(feats):
    entries = b""
    for key, (kind, vals) in feats.items():
        if kind == "bytes":
            body = ld(1, b"".join(ld(1, v) for v in vals))
        elif kind == "int":
            body = ld(3, ld(1, b"".join(encode_varint(v) for v in vals)))
        else:
            body = ld(2, ld(1, np.asarray(vals, "<f4").tobytes()))
        entries += ld(1, ld(1, key.encode()) + ld(2, body))
    return ld(1, entries)


def tfrecords():
    return sorted(os.path.join(TFR, f) for f in os.listdir(TFR) if f.endswith(".tfrecord"))


TFR = os.path.join(os.path.dirname(__file__), "..", "data", "tfrecord")
TF_FIELDS = "image/encoded:jpg,image/class/label:cls,image/object/bbox:bbox,image/size"


def test_tfrecord_field_by_field(tmp_path):
    p = pack(TFR, tmp_path / "ds", "--fields", TF_FIELDS)
    assert "packed 9 samples" in p.stdout and "skipped 0" in p.stdout
    meta = json.loads(inspect(tmp_path / "ds", "--json"))
    assert [(f["name"], f["kind"], f.get("dtype"), f.get("shape")) for f in meta["fields"]] == [
        ("jpg", "image", None, None), ("cls", "int64", None, None),
        ("bbox", "tensor", "float32", [4]), ("image_size", "tensor", "int64", [3])]
    records = [example(r) for path in tfrecords() for r in frames(open(path, "rb").read())]
    assert len(records) == 9
    for i, r in enumerate(records):
        assert field(tmp_path / "ds", i, "jpg") == r["image/encoded"][0]
        assert int(field(tmp_path / "ds", i, "cls")) == r["image/class/label"][0]
        assert field(tmp_path / "ds", i, "bbox") == np.asarray(r["image/object/bbox"],
                                                                "<f4").tobytes()
        assert field(tmp_path / "ds", i, "image_size") == np.asarray(r["image/size"],
                                                                      "<i8").tobytes()
    subprocess.run([TP, "verify", str(tmp_path / "ds"), "--decode"], check=True,
                   stdout=subprocess.DEVNULL)
    p = pack(TFR, tmp_path / "all")  # every feature, keys as field names
    names = [f["name"] for f in json.loads(inspect(tmp_path / "all", "--json"))["fields"]]
    assert names == ["image_class_label", "image_encoded", "image_format",
                     "image_object_bbox", "image_size"]


def test_tfrecord_damage_one_warning_each(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    recs = frames(open(tfrecords()[0], "rb").read())
    good = b"".join(frame(r) for r in recs)
    bad_data = bytearray(good)
    bad_data[16 + len(recs[0]) + 12 + 5] ^= 1                  # record 1's data
    (src / "a-0.tfrecord").write_bytes(bytes(bad_data))
    bad_len = bytearray(good)
    bad_len[2 * 16 + len(recs[0]) + len(recs[1]) + 1] ^= 1     # record 2's length
    (src / "a-1.tfrecord").write_bytes(bytes(bad_len))
    liar = bytearray(recs[0])
    liar[1] = 0x7F                                              # features longer than all
    lacking = encode_example({"image/encoded": ("bytes", [example(recs[0])["image/encoded"][0]]),
                              "image/object/bbox": ("float", [0, 0, 1, 1]),
                              "image/size": ("int", [1, 2, 3])})
    (src / "a-2.tfrecord").write_bytes(frame(bytes(liar)) + frame(lacking) + good[:-10])
    p = pack(f"{src}/a-{{0..2}}.tfrecord", tmp_path / "ds", "--fields", TF_FIELDS)
    w = warnings(p)
    for needle in ["a-0.tfrecord: record 1: data fails its checksum",
                   "a-1.tfrecord: record 2: a record's length fails its checksum",
                   "a-2.tfrecord: record 0: not a tf.train.Example",
                   "a-2.tfrecord: record 1: feature 'image/class/label' is missing",
                   "a-2.tfrecord: record 6: the file ends inside a record"]:
        assert sum(needle in l for l in w) == 1, (needle, w)
    assert len(w) == 5, w
    assert "packed 10 samples" in p.stdout  # 4 + 2 + the 4 whole ones of the copy
    p = pack(f"{src}/a-{{0..2}}.tfrecord", tmp_path / "strict", "--strict", check=1)
    assert "(--strict)" in p.stderr and not (tmp_path / "strict").exists()
