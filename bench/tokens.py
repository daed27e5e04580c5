"""Rows of the token-window benchmark (bench/tokens.sh runs them and prints the table).

    tokens.py stream --tokens N --out FILE     a uint16 token stream: documents of 50..1950
                                               ids (mean 1000) ending in id 50256
    tokens.py turbopump --data DS --seq-len L --batch B --ranks R --seconds S --socket SOCK
    tokens.py memmap --bin FILE --seq-len L --batch B --ranks R --seconds S
    tokens.py first-batch --data DS --seq-len L --batch B [--socket SOCK]

Each throughput row prints one JSON line: tokens/s delivered (input ids; every window
also carries its labels) and GB/s of batch arrays delivered (input_ids + labels, int64),
summed over R ranks, each rank its own process, measured for S seconds after each rank's
first batch. turbopump: one daemon for all ranks (started by tokens.sh), Loader(seq_len=L)
with zero-copy arrays as torch tensors. memmap: nanoGPT's get_batch (random offsets into
np.memmap, astype(int64), torch.stack), the common baseline; it has no epochs and no
exact-once. first-batch: the seconds from Loader() to the first batch in hand.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np


def stream(args):
    rng = np.random.default_rng(0)
    total, chunk = args.tokens, 1 << 26
    with open(args.out, "wb") as f:
        done = 0
        while done < total:
            n = min(chunk, total - done)
            ids = rng.integers(0, 50256, n, dtype=np.uint16)
            # document ends: about one per 1000 ids
            ends = np.cumsum(rng.integers(50, 1950, n // 500 + 2))
            ids[ends[ends < n]] = 50256
            ids.tofile(f)
            done += n


def _turbopump_rank(args, rank, out):
    import turbopump
    ld = turbopump.Loader(args.data, batch_size=args.batch, seq_len=args.seq_len,
                          rank=rank, world_size=args.ranks, socket=args.socket,
                          autostart=False, seed=1)
    it = iter(ld)
    b = next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        try:
            b = next(it)
        except StopIteration:
            it = iter(ld)
            continue
        n += 1
    dt = time.perf_counter() - t0
    assert tuple(b["input_ids"].shape) == (args.batch, args.seq_len)
    out.put((n, dt))
    del b
    ld.close()


def _memmap_rank(args, rank, out):
    import torch
    data = np.memmap(args.bin, dtype=np.uint16, mode="r")
    L, B = args.seq_len, args.batch
    gen = torch.Generator().manual_seed(rank)

    def get_batch():  # nanoGPT's train.py
        ix = torch.randint(len(data) - L, (B,), generator=gen)
        x = torch.stack([torch.from_numpy((data[i:i + L]).astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + L]).astype(np.int64))
                         for i in ix])
        return x, y

    get_batch()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < args.seconds:
        x, y = get_batch()
        n += 1
    out.put((n, time.perf_counter() - t0))


def throughput(args, fn):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=fn, args=(args, r, q)) for r in range(args.ranks)]
    for p in procs:
        p.start()
    got = [q.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            sys.exit("a rank failed")
    tokens = sum(n * args.batch * args.seq_len / dt for n, dt in got)
    print(json.dumps({"tokens_s": tokens, "gb_s": tokens * 16 / 1e9}))


def first_batch(args):
    import turbopump
    t0 = time.perf_counter()
    ld = turbopump.Loader(args.data, batch_size=args.batch, seq_len=args.seq_len, seed=1,
                          socket=args.socket, autostart=args.socket is None)
    b = next(iter(ld))
    dt = time.perf_counter() - t0
    assert tuple(b["input_ids"].shape) == (args.batch, args.seq_len)
    print(json.dumps({"first_batch_s": dt, "windows": ld.num_samples}))
    del b
    ld.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["stream", "turbopump", "memmap", "first-batch"])
    ap.add_argument("--tokens", type=int)
    ap.add_argument("--out")
    ap.add_argument("--data")
    ap.add_argument("--bin")
    ap.add_argument("--socket")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    if args.mode == "stream":
        stream(args)
    elif args.mode == "turbopump":
        throughput(args, _turbopump_rank)
    elif args.mode == "memmap":
        throughput(args, _memmap_rank)
    else:
        first_batch(args)


if __name__ == "__main__":
    main()
