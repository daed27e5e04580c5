"""Token windows, mixtures and elastic resume through turbopump.Loader and a real daemon:
windows equal slices of the packed stream (input_ids, labels, position_ids, cu_seqlens);
exact-once per epoch over ranks; resume equal to the uninterrupted run; a resume from
4 ranks to 3 and from 2 to 5 mid-epoch delivers every remaining window, and every
remaining image with identical pixels, exactly once; mixture proportions exact over every
global batch. Run by tests/python/run.sh with the package built."""
import io
import os
import subprocess

import numpy as np
import pytest

import turbopump
from daemons import start_daemon

TP = os.environ["TURBOPUMP"]
try:
    import torch
except ImportError:
    torch = None


def host(x):
    return x.numpy() if torch is not None and isinstance(x, torch.Tensor) else np.asarray(x)


def documents(seed, n, vocab):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 300, n)
    lengths[::13] = 1500  # some longer than a window
    return [rng.integers(0, vocab, k).astype(np.int64) for k in lengths]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    root = d / "root"
    root.mkdir()
    corpora = {}
    for name, seed, n, vocab in (("web", 1, 500, 50000), ("code", 2, 150, 100000)):
        docs = documents(seed, n, vocab)
        turbopump.pack_tokens(docs, str(root / name), vocab_size=vocab, shard_size=20000,
                              block_tokens=256)
        corpora[name] = docs
    # JPEGs for the image half of the elastic test
    from PIL import Image
    img = d / "img"
    rng = np.random.default_rng(3)
    for c in range(2):
        (img / str(c)).mkdir(parents=True)
        for i in range(45):
            a = rng.integers(0, 256, (40 + i, 50 + 2 * i, 3), dtype=np.uint8)
            a = (a // 32 * 32).astype(np.uint8)
            Image.fromarray(a).save(img / str(c) / ("%02d.jpg" % i), quality=90)
    subprocess.run([TP, "pack", str(img), str(root / "img"), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    sock = str(d / "tp.sock")
    daemon = start_daemon(root, sock, 2)
    yield {"root": root, "sock": sock, "docs": corpora}
    daemon.terminate()
    daemon.wait()


def stream_of(docs):
    starts = np.cumsum([0] + [len(x) for x in docs])[:-1]
    return np.concatenate(docs), starts


def expected(stream, starts, w, L):
    first = w * (L + 1)
    span = stream[first:first + L + 1]
    inside = starts[(starts > first) & (starts < first + L)] - first
    pos = np.arange(L)
    last = np.zeros(L, np.int64)
    for b in inside:
        last[b:] = b
    cu = np.full(L + 1, L, np.int32)
    bounds = np.concatenate([[0], inside, [L]])
    cu[:len(bounds)] = bounds
    return span[:-1], span[1:], pos - last, cu


def loader(env, name, **kw):
    kw.setdefault("batch_size", 8)
    kw.setdefault("seq_len", 63)
    return turbopump.Loader(name, socket=env["sock"], autostart=False, copy=True, **kw)


@pytest.mark.parametrize("L,dtype", [(63, "int64"), (1000, "int32"), (1, "int64")])
def test_windows_are_slices(env, L, dtype):
    stream, starts = stream_of(env["docs"]["web"])
    ld = loader(env, "web", seq_len=L, token_dtype=dtype, position_ids=True, cu_seqlens=True,
                seed=5)
    n = len(stream) // (L + 1)
    assert ld.num_samples == n
    seen = np.zeros(n, int)
    for batch in ld:
        ids = host(batch["__id__"])
        x, y = host(batch["input_ids"]), host(batch["labels"])
        pos, cu = host(batch["position_ids"]), host(batch["cu_seqlens"])
        assert x.dtype == np.dtype(dtype) and x.shape == (len(ids), L)
        assert cu.dtype == np.int32 and cu.shape == (len(ids), L + 1)
        for j, w in enumerate(ids):
            ex, ey, epos, ecu = expected(stream, starts, int(w), L)
            np.testing.assert_array_equal(x[j], ex)
            np.testing.assert_array_equal(y[j], ey)
            np.testing.assert_array_equal(pos[j], epos)
            np.testing.assert_array_equal(cu[j], ecu)
            seen[w] += 1
    assert (seen == 1).all()
    ld.close()


def run_ranks(env, name, world, k=None, state=None, **kw):
    """k batches (None: to the epoch's end) of every rank of `world`, from `state`; returns
    {rank: [(ids, batch)]} and rank 0's state_dict after them."""
    out, states = {}, []
    for r in range(world):
        ld = loader(env, name, rank=r, world_size=world, shuffle=True, seed=9, **kw)
        if state is not None:
            ld.load_state_dict(state)
        got = []
        for i, batch in enumerate(ld):
            got.append((host(batch["__id__"]).tolist(), batch))
            if k is not None and i + 1 == k:
                break
        states.append(ld.state_dict())
        out[r] = got
        ld.close()
    assert all(s["consumed"] == states[0]["consumed"] and s["epoch"] == states[0]["epoch"]
               for s in states)
    return out, states[0]


def ids_of(runs):
    return [i for got in runs.values() for ids, _ in got for i in ids]


@pytest.mark.parametrize("world,k,world2", [(4, 3, 3), (2, 5, 5), (3, 4, 3)])
def test_elastic_windows(env, world, k, world2):
    stream, starts = stream_of(env["docs"]["web"])
    L = 63
    n = len(stream) // (L + 1)
    first, state = run_ranks(env, "web", world, k)
    assert state["epoch"] == 0 and state["consumed"] == k * 8 * world
    rest, end = run_ranks(env, "web", world2, None, state)
    assert end["epoch"] == 1 and end["consumed"] == 0
    got = ids_of(first) + ids_of(rest)
    left = n - state["consumed"]
    per_rank = -(-left // world2)
    assert len(ids_of(rest)) == per_rank * world2
    counts = np.bincount(got, minlength=n)
    assert (counts >= 1).all()  # every window; the extra ones pad the last batches
    assert counts.sum() - n == per_rank * world2 - left
    for runs in (first, rest):
        for got_r in runs.values():
            for ids, batch in got_r:
                for j, w in enumerate(ids):
                    ex, ey, _, _ = expected(stream, starts, w, L)
                    np.testing.assert_array_equal(host(batch["input_ids"])[j], ex)
                    np.testing.assert_array_equal(host(batch["labels"])[j], ey)
    if world2 == world:  # the same world: exactly the uninterrupted epoch
        whole, _ = run_ranks(env, "web", world)
        for r in range(world):
            assert [ids for ids, _ in whole[r]] == \
                [ids for ids, _ in first[r]] + [ids for ids, _ in rest[r]]


@pytest.mark.parametrize("world,k,world2", [(4, 2, 3), (2, 3, 5)])
def test_elastic_images_same_pixels(env, world, k, world2):
    kw = dict(seq_len=None, batch_size=4, transform="rrc224")
    whole, _ = run_ranks(env, "img", world, None, **kw)
    pixels = {}
    for got in whole.values():
        for ids, batch in got:
            for j, i in enumerate(ids):
                pixels.setdefault(i, host(batch["jpg"])[j])
    first, state = run_ranks(env, "img", world, k, **kw)
    rest, end = run_ranks(env, "img", world2, None, state, **kw)
    assert end["epoch"] == 1
    n = 90
    delivered = ids_of(first) + ids_of(rest)
    remaining = ids_of(rest)
    counts = np.bincount(delivered, minlength=n)
    assert (counts >= 1).all()
    left = n - state["consumed"]
    assert len(remaining) == -(-left // world2) * world2
    for runs in (first, rest):
        for got in runs.values():
            for ids, batch in got:
                for j, i in enumerate(ids):  # same augmentation randomness per sample
                    np.testing.assert_array_equal(host(batch["jpg"])[j], pixels[i])


def test_resume_same_world_tokens(env):
    whole = [host(b["input_ids"]) for b in loader(env, "web", seed=3)]
    ld = loader(env, "web", seed=3)
    part = []
    for i, b in enumerate(ld):
        part.append(host(b["input_ids"]))
        if i == 6:
            break
    state = ld.state_dict()
    ld.close()
    assert state["batch"] == 7
    ld = loader(env, "web", seed=3)
    ld.load_state_dict(state)
    part += [host(b["input_ids"]) for b in ld]
    assert len(part) == len(whole)
    for a, b in zip(part, whole):
        np.testing.assert_array_equal(a, b)
    # a state from before "consumed" existed: batches of its world size
    old = {k: v for k, v in state.items() if k not in ("consumed", "batch_size")}
    ld = loader(env, "web", seed=3)
    ld.load_state_dict(old)
    np.testing.assert_array_equal(host(next(iter(ld))["input_ids"]), whole[7])
    ld.close()


def test_mixture(env):
    web, _ = stream_of(env["docs"]["web"])
    code, _ = stream_of(env["docs"]["code"])
    L = 63
    nweb = len(web) // (L + 1)
    paths = {"web": 0.7, "code": 0.3}
    rows = []
    lds = [loader(env, paths, batch_size=5, rank=r, world_size=2, seed=4, mixture_epoch=1000)
           for r in range(2)]
    its = [iter(ld) for ld in lds]
    for k in range(40):
        from_web = 0
        for it in its:
            b = next(it)
            for j, i in enumerate(host(b["__id__"])):
                src, w = (web, i) if i < nweb else (code, i - nweb)
                np.testing.assert_array_equal(host(b["input_ids"])[j],
                                              src[w * (L + 1):w * (L + 1) + L])
                from_web += i < nweb
                rows.append(int(i))
        assert from_web == 7  # 10 positions per global batch: exact every batch
    state = lds[0].state_dict()
    after = [int(i) for i in host(next(its[0])["__id__"])]
    for ld in lds:
        ld.close()
    ld = loader(env, paths, batch_size=5, rank=0, world_size=2, seed=4, mixture_epoch=1000)
    ld.load_state_dict(state)
    assert [int(i) for i in host(next(iter(ld))["__id__"])] == after
    ld.close()
    with pytest.raises(ValueError):
        turbopump.Loader({"web": 0.5}, batch_size=4, socket=env["sock"], autostart=False)
    with pytest.raises(ValueError):
        loader(env, {"web": 0.0, "code": 1.0})


def test_errors(env):
    with pytest.raises(turbopump.Error, match="give seq_len"):
        turbopump.Loader("web", batch_size=4, socket=env["sock"], autostart=False)
    with pytest.raises(turbopump.Error, match="not tokens"):
        loader(env, "img")
    with pytest.raises(ValueError, match="need seq_len"):
        turbopump.Loader("img", batch_size=4, position_ids=True, socket=env["sock"])


@pytest.mark.parametrize("mode", ["pad", "pack"])
def test_aligned_windows(env, mode):
    docs = env["docs"]["web"]
    stream, starts = stream_of(docs)
    L = 200
    ld = loader(env, "web", seq_len=L, align_documents=mode, pad_id=-1, shuffle=False,
                position_ids=True)
    pieces, ends = [], set(np.cumsum([len(x) for x in docs]).tolist())
    at = 0
    for batch in ld:
        x, y, pos = host(batch["input_ids"]), host(batch["labels"]), host(batch["position_ids"])
        for j in range(len(x)):
            n = int((y[j] != -100).sum()) + 1  # the window's ids: its labels and one more
            np.testing.assert_array_equal(x[j][:min(n, L)], stream[at:at + min(n, L)])
            np.testing.assert_array_equal(y[j][:n - 1], stream[at + 1:at + n])
            assert (x[j][min(n, L):] == -1).all() and (y[j][n - 1:] == -100).all()
            assert (pos[j][min(n, L):] == 0).all()
            # starts a document, or continues a long one by L + 1
            d = np.searchsorted(starts, at, side="right") - 1
            assert (at - starts[d]) % (L + 1) == 0
            if mode == "pad":  # inside one document
                assert at + n <= (starts[d + 1] if d + 1 < len(starts) else len(stream))
            at += n
            assert at in ends or (at - starts[d]) % (L + 1) == 0
            pieces.append(n)
    assert at == len(stream)
    if mode == "pack":
        assert len(pieces) < sum(-(-len(x) // (L + 1)) for x in docs)
    ld.close()
