"""turbopump.Writer: any samples into a turbopump dataset, with the same atomic
publication, checksums and shard formats as `turbopump pack`.

    with turbopump.Writer("/data/beans.tp", classes=["angular", "bean_rust", "healthy"]) as w:
        for row in datasets.load_dataset("beans", split="train"):
            w.write({"jpg": row["image"], "cls": row["labels"]})

A sample is a dict of field name -> value; the first sample fixes the fields (names, in
its order, and kinds), and every later sample must have the same keys:

- bytes (bytes, bytearray, memoryview): an encoded image when the name is jpg, jpeg, png
  or ends in .jpg/.png (seg.png), else bytes;
- str: bytes, UTF-8;
- int, bool or a NumPy integer: int64;
- float: a float64 tensor of shape (1,);
- a NumPy array: a tensor whose dtype and shape the first sample fixes;
- a PIL image: encoded as PNG, or as JPEG (quality 95) when the name says jpg/jpeg.

Nothing appears at `path` until close() (or the end of the with block) publishes it; an
exception inside the with block discards it. The dataset id derives from the fields, the
classes and `source`, so the same samples give the same bytes; name the data in `source`
("hf:beans/train") when several datasets share a schema.
"""
import hashlib
import io
import numbers

import numpy as np

from . import _turbopump

_IMAGE_NAMES = ("jpg", "jpeg", "png")
_DTYPES = {"uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32",
           "float64"}


def _tail(name):
    return name.rsplit(".", 1)[-1]


def _is_pil(v):
    return type(v).__module__.startswith("PIL.") and hasattr(v, "save")


class Writer:
    """Writer(path, fields=None, classes=None, format="record", shard_size=256 << 20,
    align=4096, source="", force=False). `fields`, if given, is a list of (name, kind) or
    (name, "tensor", dtype, shape) and fixes the schema instead of the first sample."""

    def __init__(self, path, fields=None, classes=None, format="record",
                 shard_size=256 << 20, align=4096, source="", force=False):
        self.path = str(path)
        self._opts = dict(classes=list(classes) if classes is not None else None,
                          format=format, align=align, shard_bytes=int(shard_size),
                          source=source, replace=bool(force))
        if format not in ("record", "lmdb"):
            raise ValueError("format must be 'record' or 'lmdb', not %r" % (format,))
        self._schema = None
        self._w = None
        self.count = 0
        if fields is not None:
            self._start([tuple(f) + (None,) * (4 - len(f)) for f in fields])

    # ---- the schema

    @staticmethod
    def _kind(name, v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            return (name, "image" if _tail(name) in _IMAGE_NAMES else "bytes", None, None)
        if isinstance(v, str):
            return (name, "bytes", None, None)
        if isinstance(v, (bool, numbers.Integral)) or (
                isinstance(v, np.generic) and np.issubdtype(v.dtype, np.integer)):
            return (name, "int64", None, None)
        if isinstance(v, float):
            return (name, "tensor", "float64", (1,))
        if isinstance(v, np.ndarray):
            dtype = v.dtype.newbyteorder("=").name if v.dtype.byteorder in "<>=|" else None
            if dtype == "bool":
                dtype = "uint8"
            if dtype not in _DTYPES or v.ndim < 1:
                raise TypeError("field %r: arrays of %s with 1 to 8 dimensions only"
                                % (name, v.dtype))
            return (name, "tensor", dtype, tuple(int(d) for d in v.shape))
        if _is_pil(v):
            return (name, "image", None, None)
        raise TypeError("field %r: no field kind for %s" % (name, type(v).__name__))

    def _start(self, schema):
        self._schema = schema
        self._names = [f[0] for f in schema]
        text = repr((schema, self._opts["classes"], self._opts["format"],
                     self._opts["align"], self._opts["shard_bytes"], self._opts["source"]))
        ident = hashlib.blake2b(text.encode(), digest_size=16).digest()
        self._w = _turbopump.DatasetWriter(self.path, schema, id=ident, **self._opts)

    # ---- values

    def _value(self, field, v):
        name, kind, dtype, shape = field
        if kind == "int64":
            if isinstance(v, float) or not isinstance(v, (bool, numbers.Integral, np.integer)):
                raise TypeError("field %r: an integer, not %r" % (name, v))
            return int(v).to_bytes(8, "little", signed=True)
        if kind == "tensor":
            a = np.ascontiguousarray(v, dtype=np.dtype(dtype).newbyteorder("<"))
            if a.shape != tuple(shape):
                raise ValueError("field %r: shape %s, not %s like the first sample"
                                 % (name, a.shape, tuple(shape)))
            return a
        if _is_pil(v):
            buf = io.BytesIO()
            if _tail(name) in ("jpg", "jpeg"):
                v.convert("RGB").save(buf, format="JPEG", quality=95)
            else:
                v.save(buf, format="PNG")
            return buf.getvalue()
        if isinstance(v, str):
            return v.encode("utf-8")
        if isinstance(v, (bytes, bytearray, memoryview)):
            return v
        raise TypeError("field %r (%s): not %s" % (name, kind, type(v).__name__))

    def write(self, sample):
        """Appends one sample (a dict); returns its id."""
        if self._schema is None:
            self._start([self._kind(str(k), v) for k, v in sample.items()])
        if self._w is None:
            raise ValueError("the writer is closed")
        if set(sample) != set(self._names):
            missing = [n for n in self._names if n not in sample]
            extra = [k for k in sample if k not in self._names]
            raise KeyError("sample %d: %s" % (self.count, "; ".join(
                p for p in ("missing " + ", ".join(missing) if missing else "",
                            "unknown " + ", ".join(map(str, extra)) if extra else "") if p)))
        values = [self._value(f, sample[f[0]]) for f in self._schema]
        self.count = self._w.append(values)
        return self.count - 1

    def close(self):
        """Publishes the dataset (atomically) and ends the writer."""
        if self._w is None and self._schema is None:
            raise ValueError("no samples were written, and no fields were given")
        if self._w is not None:
            w, self._w = self._w, None
            w.finish()

    def discard(self):
        """Ends the writer without publishing anything."""
        if self._w is not None:
            w, self._w = self._w, None
            w.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.discard()
        return False
