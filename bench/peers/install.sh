#!/usr/bin/env bash
# Installs the peer data loaders that bench/compare.py runs beside turbopump, each into the
# same virtual environment, and records which of them work:
#
#   bench/peers/install.sh VENV
#
# VENV is created if missing (python3 -m venv --system-site-packages, so Debian's numpy and
# Pillow stay in use; a constraints file pins them, so no peer can upgrade them). Then, each
# on its own, so that one failing does not stop the others:
#   torch, torchvision   (PyPI, current: the DataLoader rows and LitData, which needs
#                         torch >= 2.3; PyPI's Linux wheel brings its CUDA libraries, about
#                         3 GB, unused here. If it will not install, Debian's torch stays and
#                         peers.json says so. Once installed it is pinned too.)
#   webdataset           (PyPI)
#   nvidia-dali-cuda120  (PyPI; its CPU pipelines need no GPU)
#   ffcv                 (PyPI, built from source; needs pkg-config, OpenCV and libjpeg-turbo
#                         headers, installed with apt-get when missing)
#   spdl                 (PyPI; needs FFmpeg's shared libraries, Debian 12's FFmpeg 5:
#                         libavdevice59 and the rest, installed with apt-get when missing)
#   litdata              (PyPI)
#   matplotlib           (charts)
#   scikit-image         (only its bundled photographs: compare.py --photos)
# A peer that already imports and passes its smoke test is left alone, so a second run is
# quick. The outcome goes to VENV/peers.json:
#   {"webdataset": {"ok": true, "version": "1.0.2"}, "dali": {"ok": false, "reason": "..."}, ...}
# and each peer's pip/apt output to VENV/peers-logs/NAME.log. Exits 0 unless VENV itself
# cannot be made.
set -u

if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: $0 VENV" >&2
    exit 2
fi
VENV=$1
SYSPY=/usr/bin/python3
if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    if ! "$SYSPY" -m venv --system-site-packages "$VENV"; then
        echo "error: could not create the venv $VENV ($SYSPY -m venv failed)" >&2
        exit 1
    fi
fi
VENV=$(cd "$VENV" && pwd)
PY=$VENV/bin/python
LOGS=$VENV/peers-logs
mkdir -p "$LOGS"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# Pin whatever of these the system provides, at the version it provides.
CONS=$VENV/peers-constraints.txt
"$PY" - >"$CONS" <<'EOF'
from importlib import metadata
for name in ("numpy", "Pillow"):
    try:
        print("%s==%s" % (name, metadata.version(name)))
    except metadata.PackageNotFoundError:
        pass
# With numpy 1.x pip would otherwise download and reject each newer wheel in turn (about
# 500 MB): opencv-python >= 4.12 (ffcv's dependency) and matplotlib >= 3.11 need numpy >= 2
# or >= 1.25.
try:
    if int(metadata.version("numpy").split(".")[0]) < 2:
        print("opencv-python<4.12\nmatplotlib<3.11")
except metadata.PackageNotFoundError:
    pass
EOF
echo "pinned: $(tr '\n' ' ' <"$CONS")" >&2

RESULTS=()   # "key<TAB>ok<TAB>version or reason"

# Last line of a log that looks like an error, shortened to one line.
why() {
    local line
    line=$(grep -E "ERROR|Error|error:|No matching|not found|Could not|No space" "$1" 2>/dev/null |
           grep -v -E "^\s*$|error: subprocess-exited-with-error" | tail -n 1)
    [ -n "$line" ] || line=$(grep -v -E "^\s*$" "$1" 2>/dev/null | tail -n 1)
    echo "$line" | tr -s ' \t' ' ' | sed 's/^ //' | cut -c1-300
}

# check KEY: runs the peer's smoke test; prints its version on success.
check() {
    case $1 in
    webdataset)
        "$PY" - <<'EOF'
from importlib import metadata
import webdataset
print(metadata.version("webdataset"))
EOF
        ;;
    dali)
        # A one-op CPU pipeline with no GPU: proves the CPU path works here.
        "$PY" - <<'EOF'
from importlib import metadata
import numpy as np
from nvidia.dali import fn, pipeline_def
@pipeline_def(batch_size=2, num_threads=1, device_id=None)
def p():
    return fn.random.uniform(range=(0.0, 1.0), shape=(3,))
pipe = p()
pipe.build()
out, = pipe.run()
assert np.array(out.as_tensor()).shape == (2, 3)
print(metadata.version("nvidia-dali-cuda120"))
EOF
        ;;
    ffcv)
        "$PY" - <<'EOF'
from importlib import metadata
import ffcv._libffcv  # the compiled part (OpenCV + libjpeg-turbo)
from ffcv.loader import Loader, OrderOption  # noqa: F401  (pulls in numba and torch)
from ffcv.fields.decoders import RandomResizedCropRGBImageDecoder  # noqa: F401
print(metadata.version("ffcv"))
EOF
        ;;
    torch)
        "$PY" - <<'EOF'
import torch, torchvision
major, minor = (int(v) for v in torch.__version__.split(".")[:2])
assert (major, minor) >= (2, 3), "torch %s is older than 2.3" % torch.__version__
from torchvision.transforms import v2  # noqa: F401
from torchvision.io import decode_jpeg  # noqa: F401
print("%s, torchvision %s" % (torch.__version__, torchvision.__version__))
EOF
        ;;
    spdl)
        # decode one JPEG made here through FFmpeg: proves the libraries load
        "$PY" - <<'EOF'
import io
from importlib import metadata
from PIL import Image
import spdl.io
buf = io.BytesIO()
Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "JPEG")
out = spdl.io.to_numpy(spdl.io.load_image_batch([buf.getvalue()], width=32, height=32,
                                                pix_fmt="rgb24"))
assert out.shape == (1, 32, 32, 3), out.shape
print(metadata.version("spdl"))
EOF
        ;;
    litdata)
        "$PY" - <<'EOF'
from importlib import metadata
import litdata  # noqa: F401
from litdata import StreamingDataLoader, StreamingDataset, optimize  # noqa: F401
print(metadata.version("litdata"))
EOF
        ;;
    skimage)
        "$PY" - <<'EOF'
from importlib import metadata
import os, skimage
assert os.path.exists(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png"))
print(metadata.version("scikit-image"))
EOF
        ;;
    matplotlib)
        "$PY" - <<'EOF'
from importlib import metadata
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: F401
print(metadata.version("matplotlib"))
EOF
        ;;
    esac
}

pip_install() {  # LOG ARGS...
    local log=$1
    shift
    "$PY" -m pip install -c "$CONS" "$@" >>"$log" 2>&1
}

apt_install() {  # LOG PACKAGES...
    local log=$1
    shift
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    if [ "$(id -u)" != 0 ]; then
        if sudo -n true 2>/dev/null; then apt=(sudo -n "${apt[@]}"); else
            echo "not root and no password-less sudo: cannot apt-get install $*" >>"$log"
            return 1
        fi
    fi
    echo "+ apt-get -y install --no-install-recommends $*" >>"$log"
    "${apt[@]}" -y install --no-install-recommends "$@" >>"$log" 2>&1 && return 0
    echo "+ apt-get update, then again" >>"$log"
    "${apt[@]}" update >>"$log" 2>&1
    "${apt[@]}" -y install --no-install-recommends "$@" >>"$log" 2>&1
}

# ffcv compiles a C++ extension against OpenCV and libjpeg-turbo found through pkg-config.
ffcv_build_deps() {
    local log=$1 inc
    inc=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    if command -v pkg-config >/dev/null && command -v g++ >/dev/null &&
        { pkg-config --exists opencv4 || pkg-config --exists opencv; } &&
        pkg-config --exists libturbojpeg && [ -f "$inc/Python.h" ]; then
        return 0
    fi
    echo "ffcv: installing its build dependencies with apt-get" >&2
    apt_install "$log" pkg-config g++ libopencv-dev libturbojpeg0-dev python3-dev
}

# peer KEY PIP-ARGS...: smoke test; if it fails, install and test again; record the result.
peer() {
    local key=$1 log=$LOGS/$1.log ver out
    shift
    if out=$(check "$key" 2>/dev/null) && ver=$(echo "$out" | tail -n 1) && [ -n "$ver" ]; then
        echo "$key: $ver already works" >&2
        RESULTS+=("$key	ok	$ver")
        return
    fi
    : >"$log"
    local t0=$SECONDS
    echo "$key: installing (log: $log)" >&2
    if [ "$key" = ffcv ] && ! ffcv_build_deps "$log"; then
        RESULTS+=("$key	fail	build dependencies could not be installed: $(why "$log")")
        echo "$key: FAILED (apt-get)" >&2
        return
    fi
    if [ "$key" = spdl ] && ! apt_install "$log" libavdevice59 libavfilter8 libavformat59 \
            libavcodec59 libavutil57 libswscale6 libswresample4; then
        RESULTS+=("$key	fail	FFmpeg 5 libraries could not be installed: $(why "$log")")
        echo "$key: FAILED (apt-get)" >&2
        return
    fi
    if ! pip_install "$log" "$@"; then
        RESULTS+=("$key	fail	pip install $*: $(why "$log")")
        echo "$key: FAILED (pip, $((SECONDS - t0)) s)" >&2
        return
    fi
    if out=$(check "$key" 2>&1) && ver=$(echo "$out" | tail -n 1) && [ -n "$ver" ]; then
        RESULTS+=("$key	ok	$ver")
        echo "$key: $ver installed in $((SECONDS - t0)) s" >&2
    else
        echo "$out" >>"$log"
        out=$(echo "$out" | grep -v '^\s*$' | tail -n 1 | cut -c1-300)
        RESULTS+=("$key	fail	installed but its smoke test fails: $out")
        echo "$key: FAILED (smoke test, see $log)" >&2
    fi
}

peer torch torch torchvision
# from here on the torch that works is pinned, so that no peer moves it
"$PY" - >>"$CONS" <<'EOF'
from importlib import metadata
for name in ("torch", "torchvision"):
    try:
        print("%s==%s" % (name, metadata.version(name)))
    except metadata.PackageNotFoundError:
        pass
EOF
peer webdataset webdataset
peer dali nvidia-dali-cuda120
peer ffcv ffcv
peer spdl spdl
peer litdata litdata
peer matplotlib matplotlib
peer skimage scikit-image

printf '%s\n' "${RESULTS[@]}" | "$PY" -c '
import json, sys
out = {}
for line in sys.stdin.read().splitlines():
    key, ok, text = line.split("\t", 2)
    out[key] = {"ok": True, "version": text} if ok == "ok" else {"ok": False, "reason": text}
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
' "$VENV/peers.json"
cat "$VENV/peers.json"
exit 0
