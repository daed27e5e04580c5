"""LitData's TokensLoader on a token stream, as its README's language-model recipe uses it:
`litdata.optimize(fn, inputs, output_dir, chunk_size=(L + 1) * 1024,
item_loader=TokensLoader())` writes the ids as int32 tensors, then
`StreamingDataset(item_loader=TokensLoader(block_size=L + 1), shuffle=True,
drop_last=True)` read by a `StreamingDataLoader(batch_size=B, num_workers=W)`; the loop
takes input_ids = batch[:, :L].long() and labels = batch[:, 1:].long(), as litgpt does.

    python3 bench/peers/litdata_tokens_run.py prepare --bin FILE --out DIR --seq-len L
    python3 bench/peers/litdata_tokens_run.py run --data DIR --seq-len L --batch B \
        --workers W --seconds S

prepare reads FILE (uint16 ids) and does nothing when DIR holds it already. run prints one
JSON line: {"tokens_s", "gb_s", "first_batch_s"}, measured as bench/tokens.py measures.
"""
import argparse
import json
import os
import time

import numpy as np

PIECE = 1 << 22  # ids per optimize input


def piece(item):
    import torch
    path, i = item
    data = np.memmap(path, dtype=np.uint16, mode="r")
    yield torch.from_numpy(data[i * PIECE:(i + 1) * PIECE].astype(np.int32))


def prepare(a):
    out = os.path.abspath(a.out)
    if os.path.exists(os.path.join(out, "index.json")):
        return
    import litdata
    from litdata.streaming.item_loader import TokensLoader
    n = os.path.getsize(a.bin) // 2
    inputs = [(os.path.abspath(a.bin), i) for i in range(-(-n // PIECE))]
    t0 = time.time()
    litdata.optimize(fn=piece, inputs=inputs, output_dir=out, chunk_size=(a.seq_len + 1) * 1024,
                     item_loader=TokensLoader(), num_workers=2)
    print(json.dumps({"prepare_seconds": time.time() - t0}), flush=True)


def run(a):
    from litdata import StreamingDataLoader, StreamingDataset
    from litdata.streaming.item_loader import TokensLoader
    L = a.seq_len
    t0 = time.perf_counter()
    ds = StreamingDataset(input_dir=os.path.abspath(a.data),
                          item_loader=TokensLoader(block_size=L + 1), shuffle=True,
                          drop_last=True, seed=1)
    dl = StreamingDataLoader(ds, batch_size=a.batch, num_workers=a.workers)
    it = iter(dl)
    b = next(it)
    first = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < a.seconds:
        try:
            b = next(it)
        except StopIteration:
            it = iter(dl)
            continue
        x, y = b[:, :L].long(), b[:, 1:].long()
        n += 1
    dt = time.perf_counter() - t0
    assert tuple(x.shape) == (a.batch, L) and tuple(y.shape) == (a.batch, L)
    tokens = n * a.batch * L / dt
    print(json.dumps({"tokens_s": tokens, "gb_s": tokens * 16 / 1e9, "first_batch_s": first}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["prepare", "run"])
    ap.add_argument("--bin")
    ap.add_argument("--out")
    ap.add_argument("--data")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    prepare(a) if a.mode == "prepare" else run(a)


if __name__ == "__main__":
    main()
