"""Image pipelines with torchvision's names and arguments, run by the turbopump daemon.

    from turbopump import Loader, transforms as T
    train = T.Compose([T.RandomResizedCrop(176, scale=(0.35, 1)), T.RandomHorizontalFlip(),
                       T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
                       T.ToDtype("float16", layout="chw")])
    loader = Loader("photos.tp", batch_size=256, transform=train)

Each object stands for one op of the pipeline description language (docs/TRANSFORMS.md);
describe() gives the text the daemon parses, str(pipeline) the same. Nothing runs in
Python: the daemon plans the ops together (one region decode, one resampling) in its
decode pool. Arguments are checked when the object is made, with the daemon's own parser,
so a bad one raises ValueError here, naming the argument.

The output is uint8 HWC (channels last, what the ring holds cheapest) unless a
Normalize, ToDtype, ToTensor or PILToTensor says otherwise; floats default to CHW.
"""
import math
import numbers

from . import _turbopump

__all__ = ["Transform", "Compose", "RandomResizedCrop", "Resize", "CenterCrop", "RandomCrop",
           "RandomHorizontalFlip", "ColorJitter", "Grayscale", "Normalize", "ToDtype",
           "ToTensor", "PILToTensor", "describe", "parse"]

# An op is checked inside a pipeline the parser accepts: a fixed size before it (colour and
# output ops need one) and, for geometric ops, one after it (resize(N) alone has none).
_PROBE_BEFORE = "center_crop(8) | "
_PROBE_AFTER = " | center_crop(8)"


TEXT_MAX = 1023  # bytes of a description (TP_PIPELINE_TEXT_MAX less its NUL)


def parse(text):
    """The canonical text of a pipeline (text, a Transform or a list of them), and the
    per-sample dtype, layout and shape it gives: (text, dtype, layout, shape or None).
    Raises ValueError with the position."""
    text = describe(text)
    if len(text.encode()) > TEXT_MAX:
        raise ValueError("pipeline %r...: %d bytes, at most %d" % (text[:40], len(text.encode()),
                                                                  TEXT_MAX))
    try:
        return _turbopump.pipeline(text)
    except ValueError as e:
        raise ValueError("pipeline %r: %s" % (text, e)) from None


def describe(pipeline):
    """The description text of a pipeline given as text, a Transform, or a list of them."""
    if pipeline is None:
        return None
    if isinstance(pipeline, str):
        return pipeline
    if isinstance(pipeline, Transform):
        return pipeline.describe()
    if isinstance(pipeline, (list, tuple)):
        return Compose(pipeline).describe()
    raise TypeError("a pipeline is a description string, a turbopump.transforms object or "
                    "a list of them, not %s" % type(pipeline).__name__)


def _num(v):
    """A number as the description language writes it (shortest round-trip form)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError("expected a number, got %r" % (v,))
    v = float(v)
    if not math.isfinite(v):
        raise ValueError("expected a finite number, got %r" % (v,))
    return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _size(size, what="size"):
    """torchvision's size: an int, or a sequence of one (square) or two (h, w)."""
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return str(int(size))
    if isinstance(size, (list, tuple)) and len(size) in (1, 2) and \
            all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size):
        return ":".join(str(int(s)) for s in size)
    raise TypeError("%s must be an int or a sequence of 1 or 2 ints, not %r" % (what, size))


def _pair(v, what):
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return "%s:%s" % (_num(v[0]), _num(v[1]))
    raise TypeError("%s must be a (min, max) pair, not %r" % (what, v))


def _channels(v, what):
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return _num(v)
    try:
        values = [float(x) for x in v]
    except TypeError:
        raise TypeError("%s must be a number or a sequence of 3, not %r" % (what, v)) from None
    if len(values) not in (1, 3):
        raise ValueError("%s must have 1 or 3 values (RGB), not %d" % (what, len(values)))
    return ":".join(_num(x) for x in values)


def _bilinear(interpolation, antialias, who):
    name = getattr(interpolation, "value", interpolation)  # torchvision's InterpolationMode
    if str(name).lower() not in ("bilinear", "2"):  # 2: PIL's Image.BILINEAR
        raise ValueError("%s: turbopump resamples bilinearly (antialiased, Pillow's filter); "
                         "interpolation=%r is not available" % (who, interpolation))
    if antialias is False:
        raise ValueError("%s: antialias=False is not available (turbopump always "
                         "antialiases, as torchvision's default does)" % who)


def _dtype_name(dtype):
    """'float16', numpy.float16, torch.float16 -> 'float16'."""
    name = getattr(dtype, "__name__", None) or str(dtype)
    name = name.replace("torch.", "").replace("numpy.", "")
    aliases = {"float": "float32", "half": "float16", "uint8": "uint8", "float32": "float32",
               "float16": "float16", "bfloat16": "bfloat16"}
    if name not in aliases:
        raise ValueError("dtype must be uint8, float32, float16 or bfloat16, not %r" % (dtype,))
    return aliases[name]


class Transform:
    """One op of a pipeline. `a | b` and Compose([a, b]) chain them."""
    _op = None         # the op's name in the description language
    _geometry = False  # whether it is a geometric op

    def _args(self):
        """The op's arguments as description text."""
        return ""

    def describe(self):
        return "%s(%s)" % (self._op, self._args())

    def _check(self):
        text = self.describe()
        try:
            _turbopump.pipeline(_PROBE_BEFORE + text + (_PROBE_AFTER if self._geometry else ""))
        except ValueError as e:
            msg = str(e)
            if msg.startswith("at ") and ":" in msg:  # the position means nothing here
                msg = msg.split(":", 1)[1].strip()
            raise ValueError("%s: %s" % (self.__class__.__name__, msg)) from None

    def __or__(self, other):
        return Compose([self, other])

    def __str__(self):
        return self.describe()

    def __repr__(self):
        return "%s(%s)" % (self.__class__.__name__, self._args())

    def __eq__(self, other):
        return isinstance(other, Transform) and describe(self) == describe(other)

    def __hash__(self):
        return hash(self.describe())


class Compose(Transform):
    """Transforms applied in order (torchvision.transforms.Compose); the whole pipeline is
    checked when it is made."""

    def __init__(self, transforms):
        flat = []
        for t in transforms:
            if isinstance(t, Compose):
                flat.extend(t.transforms)
            elif isinstance(t, Transform):
                flat.append(t)
            else:
                raise TypeError("Compose takes turbopump.transforms objects, not %s (a "
                                "torchvision transform cannot run in the daemon)"
                                % type(t).__name__)
        if not flat:
            raise ValueError("Compose needs at least one transform")
        self.transforms = flat
        parse(self.describe())

    def describe(self):
        return " | ".join(t.describe() for t in self.transforms)

    def __or__(self, other):
        return Compose(self.transforms + [other])

    def __repr__(self):
        return "Compose([%s])" % ", ".join(repr(t) for t in self.transforms)


class RandomResizedCrop(Transform):
    """A random area fraction in `scale` and aspect ratio in `ratio` (log-uniform), resized
    to `size` (torchvision's get_params, up to 10 tries, then the central crop)."""
    _op, _geometry = "random_resized_crop", True

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                 interpolation="bilinear", antialias=True):
        _bilinear(interpolation, antialias, "RandomResizedCrop")
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)
        self._check()

    def _args(self):  # defaults left out: descriptions have 1023 bytes
        text = _size(self.size)
        if tuple(map(float, self.scale)) != (0.08, 1.0):
            text += ", scale=" + _pair(self.scale, "scale")
        if tuple(map(float, self.ratio)) != (3.0 / 4.0, 4.0 / 3.0):
            text += ", ratio=" + _pair(self.ratio, "ratio")
        return text


class Resize(Transform):
    """An int resizes the shorter side to it (the longer one to int(size * long / short),
    at most max_size); (h, w) resizes to exactly that."""
    _op, _geometry = "resize", True

    def __init__(self, size, interpolation="bilinear", max_size=None, antialias=True):
        _bilinear(interpolation, antialias, "Resize")
        self.size, self.max_size = size, max_size
        self._check()

    def _args(self):
        text = _size(self.size)
        if self.max_size is not None:
            text += ", max_size=%d" % int(self.max_size)
        return text


class CenterCrop(Transform):
    """The central size crop, padded with zeros where the image is smaller."""
    _op, _geometry = "center_crop", True

    def __init__(self, size):
        self.size = size
        self._check()

    def _args(self):
        return _size(self.size)


class RandomCrop(Transform):
    """A random size crop, after `padding` (an int, (lr, tb) or (l, t, r, b)) with a
    constant `fill`; pad_if_needed pads an image smaller than the crop."""
    _op, _geometry = "random_crop", True

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0,
                 padding_mode="constant"):
        if padding_mode != "constant":
            raise ValueError("RandomCrop: only padding_mode='constant' is available, not %r"
                             % (padding_mode,))
        if not isinstance(fill, numbers.Integral) or isinstance(fill, bool):
            raise TypeError("RandomCrop: fill must be one int 0..255 (the same for every "
                            "channel), not %r" % (fill,))
        self.size, self.padding, self.pad_if_needed, self.fill = \
            size, padding, bool(pad_if_needed), int(fill)
        self._check()

    def _args(self):
        text = _size(self.size)
        if self.padding is not None:
            p = self.padding
            if isinstance(p, numbers.Integral) and not isinstance(p, bool):
                p = [p]
            if not isinstance(p, (list, tuple)) or len(p) not in (1, 2, 4):
                raise TypeError("RandomCrop: padding must be an int or a sequence of 1, 2 or 4 "
                                "ints, not %r" % (self.padding,))
            text += ", padding=%s" % ":".join(str(int(v)) for v in p)
        if self.pad_if_needed:
            text += ", pad_if_needed=true"
        if self.fill:
            text += ", fill=%d" % self.fill
        return text


class RandomHorizontalFlip(Transform):
    """Mirrors the image with probability p."""
    _op, _geometry = "hflip", True

    def __init__(self, p=0.5):
        self.p = p
        self._check()

    def _args(self):
        return _num(self.p)


class ColorJitter(Transform):
    """Brightness, contrast and saturation factors: a number b means [max(0, 1 - b), 1 + b],
    a pair (lo, hi) that range; applied in a random order. Hue is not available."""
    _op = "color_jitter"

    def __init__(self, brightness=0, contrast=0, saturation=0, hue=0):
        if hue not in (0, None, (0, 0)):
            raise ValueError("ColorJitter: hue is not available (brightness, contrast and "
                             "saturation are)")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation
        self._check()

    def _args(self):
        parts = []
        for name in ("brightness", "contrast", "saturation"):
            v = getattr(self, name)
            if v is None or (not isinstance(v, (list, tuple)) and v == 0):
                continue
            parts.append("%s=%s" % (name, _pair(v, name) if isinstance(v, (list, tuple))
                                    else _num(v)))
        return ", ".join(parts)


class Grayscale(Transform):
    """ITU-R 601-2 luma (0.2989 r + 0.587 g + 0.114 b), as 1 or 3 channels."""
    _op = "grayscale"

    def __init__(self, num_output_channels=1):
        self.num_output_channels = num_output_channels
        self._check()

    def _args(self):
        return str(int(self.num_output_channels))


class Normalize(Transform):
    """(x / 255 - mean) / std per channel: the pixels as floats in [0, 1] (what ToTensor or
    ToDtype(float32, scale=True) gives torchvision's Normalize), fused into the output pass."""
    _op = "normalize"

    def __init__(self, mean, std, inplace=False):
        self.mean, self.std = mean, std
        self._check()

    def _args(self):
        return "mean=%s, std=%s" % (_channels(self.mean, "mean"), _channels(self.std, "std"))


class ToDtype(Transform):
    """The output's dtype (uint8, float32, float16, bfloat16; str, NumPy or torch dtypes)
    and layout ("hwc" or "chw"; default: HWC for uint8, CHW for floats). Floats are scaled
    to [0, 1] (torchvision's scale=True), or normalised when a Normalize comes first."""
    _op = "to"

    def __init__(self, dtype, scale=True, layout=None):
        self.dtype = _dtype_name(dtype)
        if self.dtype != "uint8" and not scale:
            raise ValueError("ToDtype: floats are always scaled to [0, 1] (scale=True)")
        if layout is not None and str(layout).lower() not in ("hwc", "chw"):
            raise ValueError("ToDtype: layout must be 'hwc' or 'chw', not %r" % (layout,))
        self.layout = None if layout is None else str(layout).lower()
        self._check()

    def _args(self):
        return self.dtype + (", " + self.layout if self.layout else "")

    def __repr__(self):
        return "ToDtype(%r%s)" % (self.dtype, ", layout=%r" % self.layout if self.layout else "")


class ToTensor(ToDtype):
    """float32 CHW in [0, 1], as torchvision's ToTensor."""

    def __init__(self):
        super().__init__("float32", layout="chw")

    def __repr__(self):
        return "ToTensor()"


class PILToTensor(ToDtype):
    """uint8 CHW, as torchvision's PILToTensor."""

    def __init__(self):
        super().__init__("uint8", layout="chw")

    def __repr__(self):
        return "PILToTensor()"
