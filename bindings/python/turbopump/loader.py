"""turbopump.Loader: the iterable a training loop reads batches from."""
import os

import numpy as np

from . import _turbopump
from . import transforms as _transforms
from ._paths import daemon_executable

try:
    import torch
    import torch.utils.dlpack
except ImportError:  # NumPy arrays without it
    torch = None


def _env_int(names, default):
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise ValueError("%s=%r is not an integer" % (name, value)) from None
    return default


class Loader:
    """Batches of a turbopump dataset for one rank of a training job.

    Iterating yields one epoch: dicts mapping each field to a torch.Tensor (when PyTorch
    is importable, else a numpy.ndarray), plus "__id__" (int64 sample ids) and
    "__epoch__". The next iteration continues with the next epoch; set_epoch() picks one.

    dataset     a name under the daemon's --root, or a path when no daemon runs (a
                private one is then started for this process, serving its directory)
    batch_size  samples per batch
    fields      the fields to load (default: every field that batches)
    transform   JPEG fields' pipeline: a turbopump.transforms object (Compose, or a list
                of ops), a description string (docs/TRANSFORMS.md), or a name: "rrc224"
                (RandomResizedCrop 224 + flip, default), "center224" (Resize 256 +
                CenterCrop 224), rrcN, centerN, "none"
    transforms  {field: pipeline}: per-field pipelines, overriding `transform`
    views       {name: pipeline or (field, pipeline)}: more outputs made from one stored
                image (its only JPEG field unless named), each with its own randomness
                from (seed, epoch, sample id, view), decoded once for all of them; a field
                that views are made from is then delivered only through them unless it is
                in `fields` or `transforms`
    output      images as "uint8" (NHWC, default) or normalised "float32"/"float16" (NCHW),
                for pipelines without Normalize or ToDtype of their own
    shuffle, seed, drop_last   as torch's DistributedSampler + DataLoader
    rank, world_size           default to torchrun's RANK / WORLD_SIZE (else 0 / 1)
    device      "cpu"; "cuda" or "cuda:N" for batches in GPU memory: each batch is copied
                from the page-locked ring into one of `device_depth` GPU buffers on its own
                stream, overlapping your step, and fields arrive as torch.cuda tensors
                through DLPack (no copy on the Python side), ordered on the current
                stream; with output "float32"/"float16" the GPU does the conversion.
                Any other torch device gets a copy (Tensor.to)
    device_depth  GPU buffers (default 3): at most device_depth batches can be alive at
                once, and device_depth - 1 leave room for the next copy to overlap
    socket      the daemon's socket (default: $TURBOPUMP_SOCKET, then the usual paths)
    copy        True: owned, writable arrays (a copy per batch); False: zero-copy views
    prefetch    batches the daemon prepares ahead (default 4)
    timeout     seconds to wait for a batch before raising
    autostart   start a private daemon when none answers (default True)
    daemon_path the executable to start as that daemon (default: $TURBOPUMP_BIN, else the
                one bundled in this package)

    Zero-copy views are read-only and keep their batch's slot in the ring until the last
    view of the batch is gone: keep at most prefetch - 1 batches alive (or use copy=True).

    bfloat16 outputs arrive as torch.bfloat16 tensors; without PyTorch as uint16 arrays
    holding their bits (NumPy has no bfloat16).
    """

    def __init__(self, dataset, batch_size, fields=None, transform="rrc224", shuffle=True,
                 seed=0, drop_last=False, rank=None, world_size=None, device="cpu",
                 socket=None, copy=False, output="uint8", prefetch=4, timeout=60.0,
                 autostart=True, daemon_path=None, device_depth=3, transforms=None,
                 views=None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if prefetch < 2:
            raise ValueError("prefetch must be at least 2 (one batch in use, one coming)")
        self.rank = _env_int(["RANK"], 0) if rank is None else int(rank)
        self.world_size = _env_int(["WORLD_SIZE"], 1) if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise ValueError("rank %d is not in 0..world_size-1 (%d)"
                             % (self.rank, self.world_size))
        self.local_rank = _env_int(["LOCAL_RANK"], 0)
        if str(device) != "cpu" and torch is None:
            raise ValueError("device=%r needs PyTorch" % (device,))
        self.device = device
        self.copy = copy
        self._gpu = None  # the device path's options, for device="cuda[:N]"
        if str(device).startswith("cuda"):
            index = torch.device(device).index
            if index is None:
                index = torch.cuda.current_device() if torch.cuda.is_available() else 0
            self._gpu = dict(device=index, depth=int(device_depth), output=output)
            output = "uint8"  # the GPU converts
            # the ring must have a slot more than the GPU buffers, so the daemon works ahead
            prefetch = max(int(prefetch), int(device_depth) + 1)
        self._pipelines = _pipelines(transform, transforms, views)
        self._pending = None  # set_transforms() waiting for the next epoch edge
        self._options = dict(
            dataset=os.fspath(dataset), socket=socket, fields=list(fields) if fields else None,
            output=output, batch_size=int(batch_size),
            shuffle=bool(shuffle), drop_last=bool(drop_last), seed=int(seed), rank=self.rank,
            world_size=self.world_size, prefetch=int(prefetch), hold=int(prefetch) - 1,
            timeout_ms=int(timeout * 1000), autostart=bool(autostart),
            daemon_path=daemon_path or daemon_executable())
        self.seed = int(seed)
        self._epoch, self._batch = 0, 0      # where the next batch comes from
        self._client = self._open(0, 0)
        self._client_pipelines = _copy_pipelines(self._pipelines)
        self._batches, self._per_rank, self._samples = self._client.sizes()

    def _open(self, epoch, batch):
        p = self._pipelines
        client = _turbopump.Client(epoch=epoch, batch=batch, transform=p["transform"],
                                   views=_view_tuples(p), **self._options)
        if self._gpu is not None:
            try:
                client.device(**self._gpu)
            except BaseException:
                client.close()
                raise
        return client

    def __len__(self):
        """Batches per epoch for this rank (the same for every rank)."""
        return self._batches

    @property
    def num_samples(self):
        """Samples in the dataset."""
        return self._samples

    def set_epoch(self, epoch):
        """The epoch the next iteration reads (from its first batch)."""
        self._epoch, self._batch = int(epoch), 0

    @property
    def pipelines(self):
        """The pipelines batches come from now: {"transform": text, "transforms": {field:
        text}, "views": {name: [field or None, text]}}, as description texts."""
        return _copy_pipelines(self._pipelines)

    def set_transforms(self, transform=None, transforms=None, views=None):
        """New pipelines (the arguments as the constructor's; those not given stay) from the
        next epoch on, e.g. progressive resizing. Between epochs it takes effect at once
        (the next iteration reads the new pipelines); during one, the epoch finishes with
        the pipelines it started with and the next starts with the new ones. The daemon
        keeps running; the session is reopened at the edge. Descriptions are checked here;
        field names when the session opens."""
        new = _copy_pipelines(self._pending or self._pipelines)
        given = _pipelines(transform, transforms, views, partial=True)
        new.update({k: v for k, v in given.items() if v is not None})
        if self._batch == 0:  # at an epoch edge: now
            self._pipelines, self._pending = new, None
        else:
            self._pending = new

    def state_dict(self):
        """Where the next batch comes from, and the pipelines it and later epochs use: load
        it into a new Loader to resume exactly."""
        state = {"seed": self.seed, "epoch": self._epoch, "batch": self._batch,
                 "rank": self.rank, "world_size": self.world_size,
                 "pipelines": _copy_pipelines(self._pipelines)}
        if self._pending is not None:
            state["pending_pipelines"] = _copy_pipelines(self._pending)
        return state

    def load_state_dict(self, state):
        """Resumes where `state` (state_dict()) left off. A state without pipelines (from an
        older turbopump) keeps this loader's."""
        if int(state["seed"]) != self.seed:
            raise ValueError("state is for seed %s, this loader has seed %d"
                             % (state["seed"], self.seed))
        pipelines, pending = self._pipelines, None
        if state.get("pipelines") is not None:
            pipelines = _checked_pipelines(state["pipelines"])
        if state.get("pending_pipelines") is not None:
            pending = _checked_pipelines(state["pending_pipelines"])
        self._pipelines, self._pending = pipelines, pending
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    def close(self):
        """Ends the session (once the last zero-copy view is gone)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _session_at(self, epoch, batch):
        """The session, reopened if it is not where the next batch must come from or its
        pipelines are not the ones asked for."""
        if self._client is None or self._client.state() != (epoch, batch) or \
                self._client_pipelines != self._pipelines:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._client = self._open(epoch, batch)
            self._client_pipelines = _copy_pipelines(self._pipelines)
        return self._client

    def _convert(self, array):
        if self._gpu is not None and not isinstance(array, np.ndarray) \
                and hasattr(array, "__dlpack__"):
            t = torch.utils.dlpack.from_dlpack(array)  # on the current stream
            return t.clone() if self.copy else t
        a = np.asarray(array)
        if self.copy:
            a = a.copy()
        if torch is None:
            return a
        bf16 = getattr(array, "dtype", None) == "bfloat16"
        if bf16:  # the ring holds its bits, exported as uint16 (which older torch lacks)
            a = a.view(np.int16)
        t = torch.from_numpy(a) if self.copy else _readonly_tensor(a)
        if bf16:
            t = t.view(torch.bfloat16)
        if self.device == "cpu" or self._gpu is not None:
            return t
        return t.to(self.device, non_blocking=True)

    def __iter__(self):
        if self._batch == 0 and self._pending is not None:  # the epoch edge
            self._pipelines, self._pending = self._pending, None
        epoch = self._epoch
        if self._batch >= self._batches:
            raise ValueError("batch %d is past the epoch's %d" % (self._batch, self._batches))
        client = self._session_at(epoch, self._batch)
        while self._batch < self._batches:
            got_epoch, index, skipped, ids, fields = client.next()
            assert (got_epoch, index) == (epoch, self._batch), (got_epoch, index)
            batch = {name: self._convert(a) for name, a in fields.items()}
            if self._gpu is not None:  # host ids: a copy, so they hold no GPU buffer
                ids = np.array(ids)
            batch["__id__"] = self._convert(ids)
            batch["__epoch__"] = epoch
            if skipped:
                batch["__skipped__"] = skipped
            fields = ids = None  # only the batch holds its buffers now
            self._batch += 1
            yield batch
        self._epoch, self._batch = epoch + 1, 0


def _pipelines(transform, transforms, views, partial=False):
    """The constructor's pipeline arguments as description texts, each checked."""
    out = {}
    if transform is not None or not partial:
        text = _transforms.describe("rrc224" if transform is None else transform)
        _transforms.parse(text)
        out["transform"] = text
    if transforms is not None or not partial:
        out["transforms"] = {}
        for field, pipe in dict(transforms or {}).items():
            text = _transforms.describe(pipe)
            _transforms.parse(text)
            out["transforms"][str(field)] = text
    if views is not None or not partial:
        out["views"] = {}
        for name, spec in dict(views or {}).items():
            field, pipe = None, spec
            if isinstance(spec, (tuple, list)) and len(spec) == 2 and \
                    (isinstance(spec[0], str) or spec[0] is None):
                field, pipe = spec
            text = _transforms.describe(pipe)
            _transforms.parse(text)
            out["views"][str(name)] = [field, text]
    if not partial and len(out["transforms"]) + len(out["views"]) > 16:
        raise ValueError("at most 16 per-field pipelines and views together")
    return out


def _copy_pipelines(p):
    return {"transform": p["transform"], "transforms": dict(p["transforms"]),
            "views": {k: list(v) for k, v in p["views"].items()}}


def _checked_pipelines(p):
    """Pipelines from a state dict, checked as the constructor checks them."""
    views = {name: (v[0], v[1]) if v[0] is not None else v[1]
             for name, v in dict(p.get("views") or {}).items()}
    return _pipelines(p.get("transform"), p.get("transforms"), views)


def _view_tuples(p):
    """The Client's views: per-field pipelines (a view named like its field), then views."""
    views = [(field, field, text) for field, text in p["transforms"].items()]
    views += [(name, field, text) for name, (field, text) in p["views"].items()]
    return views


def _readonly_tensor(a):
    """A tensor over a read-only NumPy view without a copy (PyTorch warns that it cannot
    guarantee read-only-ness; the ring bytes stay valid, and writing to them is the
    caller's mistake)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)
