"""turbopump.pack_tokens: tokenized documents from Python into a token dataset, the same
format `turbopump pack --tokens` writes (manifest.json + .tpt shards of uint16 or uint32
ids, XXH3 per block), published atomically.

    from tokenizers import Tokenizer
    tok = Tokenizer.from_pretrained("gpt2")
    turbopump.pack_tokens((tok.encode(t).ids + [50256] for t in texts), "corpus",
                          vocab_size=tok.get_vocab_size())

`documents` is any iterable, consumed once, of documents: lists of ints or 1-D NumPy
arrays of integer ids. Because it is consumed once, the stored dtype is decided before the
first document: `dtype` when given ("uint16" or "uint32"), else uint16 when
`vocab_size` <= 65536, else uint32. With `vocab_size`, ids >= vocab_size are errors.
Empty documents are left out and counted. On any error (an id out of range, an exception
raised by the iterable) nothing appears at `path`.
"""
import numpy as np

from . import _turbopump

_DIRECT = (np.dtype(np.uint16), np.dtype(np.uint32), np.dtype(np.int32), np.dtype(np.int64))


def _choose_dtype(vocab_size, dtype):
    if vocab_size is not None:
        vocab_size = int(vocab_size)
        if not 1 <= vocab_size <= 1 << 32:
            raise ValueError("vocab_size must be 1 to 2**32, not %d" % vocab_size)
    if dtype is not None:
        dtype = np.dtype(dtype).name
        if dtype not in ("uint16", "uint32"):
            raise ValueError("dtype must be 'uint16' or 'uint32', not %r" % (dtype,))
        if vocab_size is not None and dtype == "uint16" and vocab_size > 65536:
            raise ValueError("vocab_size %d does not fit uint16" % vocab_size)
        return dtype, vocab_size
    if vocab_size is not None and vocab_size <= 65536:
        return "uint16", vocab_size
    return "uint32", vocab_size


def _as_ids(doc, index):
    """One document as a 1-D array of a dtype the writer reads directly."""
    a = np.asarray(doc)
    if a.size == 0:
        return a.reshape(0)
    if a.ndim != 1:
        raise ValueError("document %d: ids must be 1-D, not of shape %s" % (index, a.shape))
    if a.dtype.kind not in "iu":
        raise TypeError("document %d: ids must be integers, not %s" % (index, a.dtype))
    if a.dtype not in _DIRECT:
        if a.dtype.kind == "u" and int(a.max()) > np.iinfo(np.int64).max:
            raise ValueError("document %d: id %d is too large" % (index, int(a.max())))
        a = a.astype(np.int64)
    return np.ascontiguousarray(a)


def pack_tokens(documents, path, *, vocab_size=None, dtype=None, shard_size=None,
                block_tokens=None, source="", overwrite=False):
    """Writes `documents` (an iterable of lists or 1-D arrays of ids) as a token dataset
    at `path`. shard_size: bytes of ids per shard (a shard closes at the first document
    past it; default 256 MiB); block_tokens: ids per checksummed block (256 to 2**20,
    default the C writer's TP_TOKENS_BLOCK_DEFAULT); source: free text for the manifest;
    overwrite: replace a dataset at `path`. Returns a dict: documents, tokens, empty
    (documents left out), dtype."""
    stored, vocab_size = _choose_dtype(vocab_size, dtype)
    w = _turbopump.TokensWriter(str(path), dtype=stored, shard_bytes=int(shard_size or 0),
                                block_tokens=int(block_tokens or 0), source=str(source),
                                replace=bool(overwrite))
    empty = documents_written = tokens = 0
    try:
        for i, doc in enumerate(documents):
            ids = _as_ids(doc, i)
            if ids.size == 0:
                empty += 1
                continue
            if vocab_size is not None and int(ids.max()) >= vocab_size:
                at = int(np.argmax(ids >= vocab_size))
                raise ValueError("document %d: id %d at %d is not below vocab_size %d"
                                 % (i, int(ids[at]), at, vocab_size))
            try:
                documents_written, tokens = w.append(ids)
            except _turbopump.Error as e:
                raise ValueError("document %d: %s" % (i, e.args[1])) from None
        w.finish()
    finally:
        w.close()
    return {"documents": documents_written, "tokens": tokens, "empty": empty,
            "dtype": stored}
