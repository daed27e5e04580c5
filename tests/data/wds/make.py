"""Writes the WebDataset fixture shards with webdataset's own ShardWriter (run with
webdataset, NumPy and Pillow installed; the output is checked in, so the tests need none of
them): 7 samples in two shards of at most 4, each with an image, a class, JSON, text and a
NumPy array; sample 5 also has a segmentation mask (PNG)."""
import io
import sys

import numpy as np
import webdataset as wds
from PIL import Image


def image(i, fmt):
    rng = np.random.default_rng(i)
    a = (rng.integers(0, 256, (12, 16, 3)) // 32 * 32).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    return buf.getvalue()


def main(out):
    with wds.ShardWriter(f"{out}/shard-%04d.tar", maxcount=4, mtime=0) as sink:
        for i in range(7):
            s = {"__key__": f"s{i:04d}", "cls": i % 3, "json": {"id": i, "tag": f"t{i}"},
                 "txt": f"caption {i}", "npy": np.arange(6, dtype=np.float32).reshape(2, 3) * i}
            s["jpg"] = image(i, "JPEG")
            if i == 5:
                s["seg.png"] = image(100 + i, "PNG")
            sink.write(s)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
