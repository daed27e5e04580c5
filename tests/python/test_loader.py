"""turbopump.Loader against a real daemon: the bytes, the order, resume, the zero-copy
rule, errors, Ctrl-C and memory. Run by tests/python/run.sh with the package built."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import turbopump
from daemons import start_daemon

TP = os.environ["TURBOPUMP"]
N_TENSORS = 103


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    root = d / "root"
    root.mkdir()
    run = lambda *a: subprocess.run([TP, *map(str, a)], check=True, stdout=subprocess.DEVNULL)
    run("gen", "imagefolder", d / "img", "--samples", 24, "--classes", 3, "--seed", 3)
    run("pack", d / "img", root / "img", "--quiet")
    run("gen", "tensors", root / "ten", "--samples", N_TENSORS, "--shape", "4x4x1")
    files = []  # torchvision ImageFolder order: sorted classes, sorted files
    for c, cls in enumerate(sorted(os.listdir(d / "img"))):
        for f in sorted(os.listdir(d / "img" / cls)):
            files.append((str(d / "img" / cls / f), c))
    sock = str(d / "tp.sock")
    daemon = start_daemon(root, sock)
    yield {"root": root, "sock": sock, "files": files, "dir": d}
    daemon.terminate()
    daemon.wait()


def ids_of(batch):
    return [int(i) for i in np.asarray(batch["__id__"])]


def pil_center(path, size=224, resize=256):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    rw, rh = (resize, int(resize * h / w)) if w <= h else (int(resize * w / h), resize)
    top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
    out = img.resize((rw, rh), Image.BILINEAR).crop((left, top, left + size, top + size))
    return np.asarray(out).astype(np.int16)


def test_images_and_labels_match_independent_decoding(env):
    loader = turbopump.Loader("img", 5, transform="center224", seed=2, socket=env["sock"])
    seen, errors = [], []
    for batch in loader:
        jpg, cls = np.asarray(batch["jpg"]), np.asarray(batch["cls"])
        assert jpg.shape[1:] == (224, 224, 3) and jpg.dtype == np.uint8
        for j, i in enumerate(ids_of(batch)):
            path, label = env["files"][i]
            assert cls[j] == label
            errors.append(np.abs(jpg[j].astype(np.int16) - pil_center(path)).mean())
        assert batch["__epoch__"] == 0
        seen += ids_of(batch)
    assert sorted(seen) == list(range(24)) and len(loader) == 5  # one rank: no padding
    # The bounds of docs/TRANSFORMS.md: images decoded at full scale are within one level
    # of Pillow (14-bit weights); large ones decoded at half scale differ by ~2 on average.
    print("mean absolute error vs Pillow per image: median %.3f, max %.3f"
          % (np.median(errors), np.max(errors)))
    assert np.median(errors) < 0.05 and np.max(errors) < 3.0


def test_float_output(env):
    loader = turbopump.Loader("img", 4, transform="center224", output="float32",
                              shuffle=False, socket=env["sock"])
    batch = next(iter(loader))
    x = np.asarray(batch["jpg"])
    assert x.shape == (4, 3, 224, 224) and x.dtype == np.float32
    want = pil_center(env["files"][0][0]).astype(np.float32) / 255
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    want = ((want - mean) / std).transpose(2, 0, 1)
    assert np.abs(x[0] - want).max() < 1.5 / 255 / 0.224


def test_exact_once_two_processes_torchrun_env(env):
    script = ("import json, sys, turbopump\n"
              "L = turbopump.Loader('ten', 4, seed=5, socket=sys.argv[1])\n"
              "out = []\n"
              "for e in range(2):\n"
              "    out.append([i for b in L for i in b['__id__'].tolist()])\n"
              "print(json.dumps({'len': len(L), 'ids': out}))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, env["sock"]],
                              stdout=subprocess.PIPE,
                              env={**os.environ, "RANK": str(r), "WORLD_SIZE": "2",
                                   "LOCAL_RANK": str(r)}) for r in (0, 1)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert results[0]["len"] == results[1]["len"]
    for e in range(2):
        both = results[0]["ids"][e] + results[1]["ids"][e]
        assert set(both) == set(range(N_TENSORS)) and len(both) == 2 * 52  # padded by 1
    assert results[0]["ids"][0] != results[0]["ids"][1]  # a new order each epoch


def test_state_dict_resumes_exactly(env):
    opts = dict(batch_size=6, seed=11, socket=env["sock"])
    full = turbopump.Loader("ten", **opts)
    want = [ids_of(b) for _ in range(2) for b in full]
    first = turbopump.Loader("ten", **opts)
    got = []
    for k, b in enumerate(first):
        got.append(ids_of(b))
        if k == 6:
            break
    state = first.state_dict()
    assert (state["epoch"], state["batch"]) == (0, 7)
    second = turbopump.Loader("ten", **opts)
    second.load_state_dict(state)
    got += [ids_of(b) for b in second] + [ids_of(b) for b in second]
    assert got == want
    with pytest.raises(ValueError):
        second.load_state_dict({**state, "seed": 12})


def test_views_never_show_another_batch(env):
    loader = turbopump.Loader("ten", 4, prefetch=4, socket=env["sock"])
    it = iter(loader)
    first = next(it)
    kept = np.asarray(first["raw"])
    snapshot, first_ids = kept.copy(), ids_of(first)
    if isinstance(first["raw"], np.ndarray):  # (PyTorch has no read-only tensors)
        assert not kept.flags.writeable
    # The ring gives slots back in order: while `first` lives, the daemon cannot reuse
    # its slot or any after it, so two more batches can be read and then it says so
    # instead of waiting forever or handing out overwritten memory.
    second, third = next(it), next(it)
    with pytest.raises(turbopump.Error, match="still alive"):
        next(it)
    assert np.array_equal(kept, snapshot) and ids_of(first) == first_ids
    del first, kept, second, third
    it = iter(loader)  # (the error ended that iteration) the epoch goes on from batch 3
    ids = [ids_of(b) for b in it]  # the ring wraps several times
    assert len(ids) == len(loader) - 3 and first_ids not in ids


def test_copy_gives_owned_arrays(env):
    loader = turbopump.Loader("ten", 4, copy=True, socket=env["sock"])
    kept = [b for b in loader]  # no limit on owned batches
    a = np.asarray(kept[0]["raw"])
    assert len(kept) == len(loader) and a.flags.writeable
    a[...] = 0


def test_errors_carry_the_message(env):
    with pytest.raises(turbopump.Error, match="nothere"):
        turbopump.Loader("nothere", 4, socket=env["sock"])
    with pytest.raises(turbopump.Error, match="no field 'nope'"):
        turbopump.Loader("ten", 4, fields=["nope"], socket=env["sock"])
    with pytest.raises(ValueError):
        turbopump.Loader("ten", 0, socket=env["sock"])
    with pytest.raises(ValueError):
        turbopump.Loader("ten", 4, rank=2, world_size=2, socket=env["sock"])
    with pytest.raises(turbopump.Error, match="no daemon"):
        turbopump.Loader("ten", 4, socket=str(env["dir"] / "none.sock"), autostart=False)


def test_daemon_gone_raises_within_timeout(env, tmp_path):
    sock = str(tmp_path / "d.sock")
    daemon = start_daemon(env["root"], sock)
    loader = turbopump.Loader("ten", 4, socket=sock, timeout=5)
    it = iter(loader)
    next(it)
    daemon.kill()
    daemon.wait()
    t0 = time.monotonic()
    with pytest.raises(turbopump.Error, match="daemon"):
        for _ in range(100):
            next(it)
    assert time.monotonic() - t0 < 5


def test_ctrl_c_interrupts_a_waiting_iteration(env, tmp_path):
    sock = str(tmp_path / "d.sock")
    daemon = start_daemon(env["root"], sock)
    script = ("import sys, turbopump\n"
              "L = turbopump.Loader('ten', 4, socket=sys.argv[1], timeout=60)\n"
              "print('ready', flush=True)\n"
              "while True:\n"
              "    for b in L: pass\n")
    p = subprocess.Popen([sys.executable, "-c", script, sock], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().strip() == b"ready"
        daemon.send_signal(signal.SIGSTOP)  # no more batches: the loader waits
        time.sleep(0.5)
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=10)[1]
        assert time.monotonic() - t0 < 2
        assert b"KeyboardInterrupt" in err
    finally:
        daemon.send_signal(signal.SIGCONT)
        daemon.kill()
        daemon.wait()
        p.kill()


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_rss_flat_over_20_epochs(env):
    loader = turbopump.Loader("ten", 8, socket=env["sock"])
    for _ in range(2):
        for _ in loader:
            pass
    before = rss_kib()
    for _ in range(18):
        for _ in loader:
            pass
    grown = rss_kib() - before
    assert grown < 2048, "RSS grew by %d KiB over 18 epochs" % grown


def test_numpy_arrays_without_torch(env):
    script = ("import sys; sys.modules['torch'] = None\n"
              "import numpy, turbopump\n"
              "b = next(iter(turbopump.Loader('ten', 4, socket=sys.argv[1])))\n"
              "assert all(isinstance(b[k], numpy.ndarray) for k in ('raw', 'cls', '__id__'))\n"
              "print(b['raw'].shape, b['raw'].dtype)\n")
    out = subprocess.run([sys.executable, "-c", script, env["sock"]], check=True,
                         stdout=subprocess.PIPE).stdout
    assert out.strip() == b"(4, 4, 4, 1) uint8"


FAKE_GPU = os.environ.get("TP_FAKE_GPU")
DEVICE_SCRIPT = """
import os, sys
import numpy as np, torch, turbopump
sock, output, depth = sys.argv[1], sys.argv[2], int(sys.argv[3])
kw = dict(transform="rrc64", output=output, seed=5, socket=sock)
gpu = turbopump.Loader("img", 4, device="cuda", device_depth=depth, **kw)
cpu = turbopump.Loader("img", 4, device="cpu", **kw)
n = 0
for epoch in range(2):
    gpu.set_epoch(epoch); cpu.set_epoch(epoch)
    for a, b in zip(gpu, cpu):
        assert a["__epoch__"] == b["__epoch__"] == epoch
        assert torch.equal(a["__id__"], b["__id__"])
        for k in ("jpg", "cls"):
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, (k, a[k].shape)
            assert torch.equal(a[k], b[k]), k
        n += 1
assert (gpu.state_dict()["epoch"], gpu.state_dict()["batch"]) == (2, 0)
print(n, a["jpg"].dtype, tuple(a["jpg"].shape), a["jpg"].device.type)
kept = [b for _, b in zip(range(depth + 1), turbopump.Loader("img", 4, device="cuda",
                                                         device_depth=depth, **kw))]
"""


@pytest.mark.skipif(not FAKE_GPU, reason="TP_FAKE_GPU (the stand-in GPU plugin) not set")
@pytest.mark.parametrize("output", ["uint8", "float32", "float16"])
def test_device_batches_equal_host_batches(env, output):
    """Loader(device="cuda") through the DLPack path, on the host-memory stand-in for the
    GPU plugin: the same tensors as the CPU path (conversion included), and holding more
    batches than the device buffers raises instead of hanging."""
    pytest.importorskip("torch")
    e = dict(os.environ, TURBOPUMP_GPU_PLUGIN=FAKE_GPU, TP_FAKE_GPU_COPY_US="200")
    p = subprocess.run([sys.executable, "-c", DEVICE_SCRIPT, env["sock"], output, "3"],
                       env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode()
    want = {"uint8": "torch.uint8 (4, 64, 64, 3)", "float32": "torch.float32 (4, 3, 64, 64)",
            "float16": "torch.float16 (4, 3, 64, 64)"}[output]
    assert p.stdout.decode().startswith("12 %s cpu" % want), p.stdout.decode() + err
    assert p.returncode != 0 and "device batches are still alive" in err, err


GPU_SCRIPT = ("import sys, turbopump\n"
              "try:\n"
              "    turbopump.Loader('ten', 4, device='cuda', socket=sys.argv[1])\n"
              "    print('opened')\n"
              "except turbopump.Error as e:\n"
              "    print(e.args[1])\n")


def test_device_without_a_plugin_says_why(env):
    e = dict(os.environ, TURBOPUMP_GPU_PLUGIN="/nonexistent/libturbopump_cuda.so")
    out = subprocess.run([sys.executable, "-c", GPU_SCRIPT, env["sock"]], env=e, check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    assert "cannot load the GPU plugin" in out and "/nonexistent" in out, out


def test_device_finds_the_packaged_plugin(env):
    """Built with nvcc, the package carries the plugin; it is found beside the extension
    and, on a machine without a GPU, says there is no device."""
    plugin = os.path.join(os.path.dirname(turbopump.__file__), "libturbopump_cuda.so")
    if not os.path.exists(plugin):
        pytest.skip("the package was built without nvcc")
    e = {k: v for k, v in os.environ.items() if k != "TURBOPUMP_GPU_PLUGIN"}
    out = subprocess.run([sys.executable, "-c", GPU_SCRIPT, env["sock"]], env=e, check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    assert out.strip() == "opened" or "no usable CUDA device 0" in out, out
