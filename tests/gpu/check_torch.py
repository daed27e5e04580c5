"""tests/gpu/run.sh's Python part: turbopump.Loader(device="cuda") against the CPU loader
on the same session options, through DLPack on the current stream (the default one and a
side stream), with the conversion to float32 on the GPU.

    python3 tests/gpu/check_torch.py SOCKET     (datasets 'img' and 'ten' under its root)
"""
import contextlib
import sys
import time

import torch

import turbopump


def compare(sock, output, stream=None):
    kw = dict(transform="rrc224", output=output, seed=4, socket=sock)
    gpu = turbopump.Loader("img", 64, device="cuda", **kw)
    cpu = turbopump.Loader("img", 64, device="cpu", **kw)
    n = 0
    # the tensors are made on the current stream, which then waits for their copies
    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        for a, b in zip(gpu, cpu):
            x = a["jpg"]
            assert x.is_cuda and x.dtype == b["jpg"].dtype and x.shape == b["jpg"].shape
            checksum = x.to(torch.float64).sum()  # queued at once: must see the whole batch
            assert torch.equal(x.cpu(), b["jpg"]), "batch %d differs" % n
            assert torch.equal(a["cls"].cpu(), b["cls"])
            assert float(checksum) == float(b["jpg"].to(torch.float64).sum())
            assert torch.equal(a["__id__"], b["__id__"])
            n += 1
    gpu.close()
    cpu.close()
    print("%-8s %s: %d batches equal to the CPU loader's" %
          (output, "side stream" if stream is not None else "default stream", n))


def throughput(sock, device_path):
    loader = turbopump.Loader("ten", 256, device="cuda" if device_path else "cpu",
                              shuffle=True, socket=sock, prefetch=8)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        x = batch["raw"] if device_path else batch["raw"].to("cuda", non_blocking=True)
        x.sum()
        n += x.shape[0]
    torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    loader.close()
    return n * x[0].numel() / secs / 1e9


def main():
    sock = sys.argv[1]
    print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
    for output in ("uint8", "float32", "float16"):
        compare(sock, output)
    compare(sock, "float32", torch.cuda.Stream())
    for _ in range(2):  # warm the page cache and the daemon first
        dev, host = throughput(sock, True), throughput(sock, False)
    print("raw 224x224x3 batches of 256, one epoch: device path %.2f GB/s, CPU loader + "
          ".to('cuda') %.2f GB/s" % (dev, host))


if __name__ == "__main__":
    main()
