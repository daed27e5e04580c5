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

    A token dataset (turbopump pack --tokens, turbopump.pack_tokens) is read as windows:
    give seq_len=L and each batch holds "input_ids" and "labels" [B, L] (the window's
    first L ids and its last L: the same shifted by one), int64 or int32 (token_dtype),
    and with position_ids=True "position_ids" [B, L] (restarting at every document start
    in the window) and with cu_seqlens=True "cu_seqlens" int32 [B, L + 1] (0, each
    document start, L, then L repeated; flatten a batch's into flash-attention's form with
    torch.unique(cu + L * torch.arange(B)[:, None])). The windows are the stream's
    non-overlapping spans of L + 1 ids, shuffled per epoch and split over ranks as samples
    are; with align_documents="pad" each window starts a document (one longer than L + 1
    goes on in the next window) and is padded, with "pack" it holds as many whole
    consecutive documents as fit, then padding: input_ids pad_id, labels -100 (what
    cross-entropy's ignore_index skips), position_ids 0, a cu_seqlens segment of its own. dataset={"web": 0.7, "code": 0.3} (names or paths of token datasets) reads a
    mixture: exact proportions over every period of positions (see docs), each source
    shuffling through its own epochs; mixture_epoch sets the positions of an epoch
    (default: all sources' windows).

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

    state_dict() records (epoch, positions consumed by the whole job); loaded into a Loader
    with another world_size or batch_size, the rest of that epoch is re-split over the new
    ranks, each remaining sample or window exactly once, with the same augmentation
    randomness (elastic resume).

    Zero-copy views are read-only and keep their batch's slot in the ring until the last
    view of the batch is gone: keep at most prefetch - 1 batches alive (or use copy=True).

    bfloat16 outputs arrive as torch.bfloat16 tensors; without PyTorch as uint16 arrays
    holding their bits (NumPy has no bfloat16).
    """

    def __init__(self, dataset, batch_size, fields=None, transform="rrc224", shuffle=True,
                 seed=0, drop_last=False, rank=None, world_size=None, device="cpu",
                 socket=None, copy=False, output="uint8", prefetch=4, timeout=60.0,
                 autostart=True, daemon_path=None, device_depth=3, transforms=None,
                 views=None, seq_len=None, token_dtype="int64", position_ids=False,
                 cu_seqlens=False, mixture_epoch=None, align_documents=None, pad_id=0):
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
        sources = None
        if isinstance(dataset, dict):
            if not dataset:
                raise ValueError("a mixture needs at least one dataset")
            sources = [(os.fspath(k), float(v)) for k, v in dataset.items()]
            if any(not w > 0 for _, w in sources):
                raise ValueError("mixture weights must be above 0")
            if seq_len is None:
                raise ValueError("a mixture of token datasets needs seq_len")
            dataset = None
        else:
            dataset = os.fspath(dataset)
        token_outputs = 0
        if seq_len is not None:
            if int(seq_len) < 1:
                raise ValueError("seq_len must be at least 1")
            if token_dtype not in ("int64", "int32"):
                raise ValueError("token_dtype must be 'int64' or 'int32'")
            token_outputs = (1 if token_dtype == "int32" else 0) | \
                (2 if position_ids else 0) | (4 if cu_seqlens else 0)
        elif position_ids or cu_seqlens or token_dtype != "int64" or align_documents:
            raise ValueError("position_ids, cu_seqlens, token_dtype and align_documents "
                             "need seq_len")
        aligns = {None: 0, False: 0, "pad": 1, "pack": 2}
        if align_documents not in aligns:
            raise ValueError("align_documents must be None, 'pad' or 'pack'")
        self._tokens = seq_len is not None
        self._options = dict(
            dataset=dataset, sources=sources, seq_len=int(seq_len or 0),
            token_outputs=token_outputs, mixture_epoch=int(mixture_epoch or 0),
            align_documents=aligns[align_documents], pad_id=int(pad_id),
            socket=socket, fields=list(fields) if fields else None,
            output=output, batch_size=int(batch_size),
            shuffle=bool(shuffle), drop_last=bool(drop_last), seed=int(seed), rank=self.rank,
            world_size=self.world_size, prefetch=int(prefetch), hold=int(prefetch) - 1,
            timeout_ms=int(timeout * 1000), autostart=bool(autostart),
            daemon_path=daemon_path or daemon_executable())
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        # where the next batch comes from: the epoch, and its global positions the whole
        # job has consumed (batches * batch_size * world_size while nothing changes)
        self._epoch, self._consumed = 0, 0
        self._client = self._open(0, 0)
        self._client_pipelines = _copy_pipelines(self._pipelines)
        self._batches, self._per_rank, self._samples = self._client.sizes()

    @property
    def _batch(self):
        """Batches of this epoch read so far, as this world size counts them."""
        return self._consumed // (self.batch_size * self.world_size)

    def _open(self, epoch, consumed):
        p = self._pipelines
        views = [] if self._tokens else _view_tuples(p)
        client = _turbopump.Client(epoch=epoch, consumed=consumed,
                                   transform=None if self._tokens else p["transform"],
                                   views=views, **self._options)
        if self._gpu is not None:
            try:
                client.device(**self._gpu)
            except BaseException:
                client.close()
                raise
        return client

    def __len__(self):
        """Batches per epoch for this rank (the same for every rank); an epoch resumed
        part-way has fewer left."""
        return self._batches

    @property
    def num_samples(self):
        """Samples in the dataset (windows of a token dataset, positions of a mixture's
        epoch)."""
        return self._samples

    def set_epoch(self, epoch):
        """The epoch the next iteration reads (from its first batch)."""
        self._epoch, self._consumed = int(epoch), 0

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
        if self._consumed == 0:  # at an epoch edge: now
            self._pipelines, self._pending = new, None
        else:
            self._pending = new

    def state_dict(self):
        """Where the next batch comes from, and the pipelines it and later epochs use: load
        it into a new Loader to resume exactly, with the same or another world size and
        batch size. "consumed" counts the epoch's global positions the whole job has read
        (as every rank of it has, at the same batch); "batch" is that in batches of this
        world and batch size."""
        state = {"seed": self.seed, "epoch": self._epoch, "consumed": self._consumed,
                 "batch": self._batch, "batch_size": self.batch_size,
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
        if "consumed" in state:
            consumed = int(state["consumed"])
        else:  # an older state: batches of its own world size and (unrecorded) batch size
            consumed = int(state["batch"]) * self.batch_size * \
                int(state.get("world_size", self.world_size))
        if consumed > self._samples:
            raise ValueError("state has consumed %d positions of an epoch of %d"
                             % (consumed, self._samples))
        self._epoch, self._consumed = int(state["epoch"]), consumed

    def _batches_left(self):
        """The sampler's count of this rank's batches in the rest of the epoch."""
        left, w, b = self._samples - self._consumed, self.world_size, self.batch_size
        drop = self._options["drop_last"]
        per_rank = left // w + (0 if drop or left % w == 0 else 1)
        return per_rank // b + (0 if drop or per_rank % b == 0 else 1)

    def close(self):
        """Ends the session (once the last zero-copy view is gone)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _session_at(self, epoch, consumed):
        """The session, reopened if it is not where the next batch must come from or its
        pipelines are not the ones asked for."""
        if self._client is None or self._client.position() != (epoch, consumed) or \
                self._client_pipelines != self._pipelines:
            if self._client is not None:
                self._client.close()
                self._client = None
            self._client = self._open(epoch, consumed)
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
        if self._consumed == 0 and self._pending is not None:  # the epoch edge
            self._pipelines, self._pending = self._pending, None
        epoch = self._epoch
        if self._batches_left() == 0:  # a resume left no batch of this world in the epoch
            self._epoch, self._consumed = epoch + 1, 0
            return
        client = self._session_at(epoch, self._consumed)
        while True:
            got_epoch, index, skipped, ids, fields, next_epoch, consumed = client.next()
            assert got_epoch == epoch, (got_epoch, epoch)
            batch = {name: self._convert(a) for name, a in fields.items()}
            if self._gpu is not None:  # host ids: a copy, so they hold no GPU buffer
                ids = np.array(ids)
            batch["__id__"] = self._convert(ids)
            batch["__epoch__"] = epoch
            if skipped:
                batch["__skipped__"] = skipped
            fields = ids = None  # only the batch holds its buffers now
            self._epoch, self._consumed = next_epoch, consumed
            yield batch
            if next_epoch != epoch:
                return


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


_quiet = False  # the first conversion has run with the warning silenced


def _readonly_tensor(a):
    """A tensor over a read-only NumPy view without a copy (PyTorch warns that it cannot
    guarantee read-only-ness; the ring bytes stay valid, and writing to them is the
    caller's mistake). PyTorch gives that warning once per process, so only the first
    conversion pays for silencing it."""
    global _quiet
    if _quiet:
        return torch.from_numpy(a)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(a)
    _quiet = True
    return t
