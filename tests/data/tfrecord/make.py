"""Writes the TFRecord fixtures with the `tfrecord` package's TFRecordWriter (run with
tfrecord, NumPy and Pillow installed; the output is checked in, so the tests need none of
them): 5 tf.train.Example records in train-0.tfrecord and 4 in train-1.tfrecord, each with
an encoded JPEG, its format, a class label, a float bounding box of 4 values and an int64
list of 3 values, as TensorFlow's image datasets store them."""
import io
import sys

import numpy as np
from PIL import Image
from tfrecord.writer import TFRecordWriter


def jpeg(i):
    rng = np.random.default_rng(i)
    a = (rng.integers(0, 256, (12, 16, 3)) // 32 * 32).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def main(out):
    k = 0
    for name, n in (("train-0.tfrecord", 5), ("train-1.tfrecord", 4)):
        w = TFRecordWriter(f"{out}/{name}")
        for _ in range(n):
            w.write({"image/encoded": (jpeg(k), "byte"), "image/format": (b"jpeg", "byte"),
                     "image/class/label": (k % 4, "int"),
                     "image/object/bbox": ([0.1 * k, 0.2, 0.5, 0.75], "float"),
                     "image/size": ([12, 16, 3 + k], "int")})
            k += 1
        w.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
