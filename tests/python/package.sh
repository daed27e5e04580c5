#!/usr/bin/env bash
# The Python package as a new user gets it: a wheel made with `pip wheel bindings/python`
# and `pip install bindings/python`, each into a fresh virtual environment with current
# NumPy from PyPI, then, with no turbopump on PATH and no variable set, the console command
# and `python -m turbopump` make a dataset and a Loader autostarts its private daemon (the
# bundled executable) and reads one epoch exactly. Also checks the wheel's tag (the
# interpreter's ABI, a manylinux platform) and that every bundled ELF file needs only
# glibc's libraries (and zlib, which every manylinux policy allows, and expat, which every
# one from manylinux_2_12 on does) or ones bundled beside it.
# Skips (77) when Debian's venv module is missing or PyPI cannot be reached.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pkg=$(cd "$here/../../bindings/python" && pwd)
py=/usr/bin/python3
"$py" -c 'import venv, ensurepip' 2>/dev/null || { echo "no python3-venv: skipped"; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/tp-package-XXXXXX")
# pip builds in the source tree; what it leaves there goes too
trap 'rm -rf "$work" "$pkg/build" "$pkg/turbopump.egg-info"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$py" -m venv "$work/probe"
"$work/probe/bin/pip" download -q --no-deps -d "$work/probe-dl" numpy >/dev/null 2>&1 ||
  { echo "PyPI cannot be reached (pip download numpy failed): skipped"; exit 77; }

# what a user's shell has: no turbopump anywhere on PATH, no TURBOPUMP_* variables, no
# PYTHONPATH (pip's and the network's settings stay, and TP_CUDA)
user_env() {
  local unset=() v
  for v in $(compgen -e); do
    case $v in TP_CUDA) ;; TURBOPUMP*|TP_*|PYTHONPATH|PYTHONHOME|VIRTUAL_ENV) unset+=(-u "$v") ;; esac
  done
  env "${unset[@]}" HOME="$work/home" PATH="$1/bin:/usr/bin:/bin" "${@:2}"
}
mkdir -p "$work/home"

echo "== pip wheel bindings/python"
"$py" -m venv "$work/build-venv"
(cd "$work" && user_env "$work/build-venv" pip wheel -q --no-deps -w "$work/wheels" "$pkg") ||
  fail "pip wheel failed"
wheel=$(ls "$work"/wheels/turbopump-*.whl)
name=$(basename "$wheel")
abi=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
echo "built $name"
[[ $name =~ ^turbopump-[0-9.]+-${abi}-${abi}-manylinux_2_[0-9]+_$(uname -m)\.whl$ ]] ||
  fail "wheel $name: expected the tag ${abi}-${abi}-manylinux_2_N_$(uname -m)"
"$py" - "$wheel" <<'EOF' || fail "wheel contents"
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
for want in ("turbopump/bin/turbopump", "turbopump/__main__.py", "turbopump/loader.py",
             "turbopump/transforms.py"):
    assert want in names, "%s is not in the wheel" % want
assert any(n.startswith("turbopump/_turbopump.") for n in names), "no extension in the wheel"
EOF
if { command -v nvcc || [ -x "${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}/bin/nvcc" ]; } \
    >/dev/null && [ "${TP_CUDA:-auto}" != 0 ]; then
  "$py" -c 'import sys, zipfile
assert "turbopump/libturbopump_cuda.so" in zipfile.ZipFile(sys.argv[1]).namelist()' "$wheel" ||
    fail "nvcc is on PATH but the wheel has no GPU plugin"
fi

# $1: a venv with the package installed. Its ELF files need glibc's libraries (and zlib, as
# manylinux allows) or bundled ones; then a dataset is made and read as a user would.
use_package() {
  local venv=$1 site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  while IFS= read -r -d '' f; do
    head -c 4 "$f" | grep -q "ELF" || continue
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case $lib in
        libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libgcc_s.so.*|\
        libresolv.so.*|libnsl.so.*|libutil.so.*|\
        libstdc++.so.*) ;;
        # zlib is on every manylinux system (it is in every policy's library list), so
        # auditwheel leaves it out; libspng needs it. expat is in every policy's list from
        # manylinux_2_12 on (the wheel's tag is far above; checked below); S3's XML
        # answers are read with it
        libz.so.1) ;;
        libexpat.so.1) [[ $name =~ manylinux_2_([0-9]+)_ ]] && [ "${BASH_REMATCH[1]}" -ge 12 ] ||
          fail "${f#$site/} needs libexpat.so.1, which $name's policy does not promise" ;;
        *) [ -e "$site/turbopump.libs/$lib" ] ||
             fail "${f#$site/} needs $lib, which is neither glibc's nor bundled" ;;
      esac
    done
  done < <(find "$site/turbopump" "$site/turbopump.libs" -type f -print0 2>/dev/null)

  local data=$work/data-$(basename "$venv")
  mkdir -p "$data"
  user_env "$venv" turbopump --version | grep -q "^turbopump " || fail "turbopump --version"
  user_env "$venv" turbopump gen imagefolder "$data/photos" --samples 120 --classes 3 \
    --seed 1 >/dev/null || fail "turbopump gen (console entry point)"
  user_env "$venv" python -m turbopump pack "$data/photos" "$data/photos.tp" >/dev/null ||
    fail "python -m turbopump pack"
  (cd "$work" && user_env "$venv" python - "$data/photos.tp" <<'EOF') || fail "Loader"
import sys, numpy, turbopump
loader = turbopump.Loader(sys.argv[1], 32, seed=3)    # no daemon runs: a private one starts
ids = []
for batch in loader:
    assert isinstance(batch["jpg"], numpy.ndarray), type(batch["jpg"])
    assert batch["jpg"].shape[1:] == (224, 224, 3) and batch["jpg"].dtype == numpy.uint8
    ids += [int(i) for i in batch["__id__"]]
loader.close()
assert sorted(ids) == list(range(120)), "the epoch was not exact: %d ids" % len(ids)
print("epoch exact: %d samples, numpy %s" % (len(ids), numpy.__version__))
from turbopump import transforms as T
views = {"g": [T.RandomResizedCrop(64), T.RandomHorizontalFlip(), T.ToDtype("float16")],
         "l": ("jpg", T.RandomResizedCrop((24, 32), scale=(0.05, 0.4)) | T.ToDtype("bfloat16"))}
loader = turbopump.Loader(sys.argv[1], 16, seed=3, views=views)
batch = next(iter(loader))
assert batch["g"].shape == (16, 3, 64, 64) and batch["g"].dtype == numpy.float16
assert batch["l"].shape == (16, 3, 24, 32) and batch["l"].dtype == numpy.uint16  # its bits
del batch  # the ring gives slots back in order: a kept batch holds the ones after it
loader.set_transforms(views={"g": "center_crop(32)", "l": "center_crop(16)"})
shapes = [b["g"].shape[1] for b in loader]  # the rest of epoch 0 with the old ones
shapes += [b["g"].shape[1] for b in loader]
assert shapes == [3] * 7 + [32] * 8, shapes
loader.close()
print("pipelines and views: ok")
with turbopump.Writer(sys.argv[1] + ".w", classes=["x", "y"]) as w:  # written from Python
    for i in range(10):
        w.write({"txt": "sample %d" % i, "cls": i % 2, "emb": numpy.full(3, i, numpy.float32)})
loader = turbopump.Loader(sys.argv[1] + ".w", 5, shuffle=False, fields=["cls", "emb"])
got = [(int(c), float(e[0])) for b in loader for c, e in zip(b["cls"], b["emb"])]
assert got == [(i % 2, float(i)) for i in range(10)], got
loader.close()
print("Writer: ok")
EOF
}

echo "== the wheel in a fresh venv"
"$py" -m venv "$work/wheel-venv"
user_env "$work/wheel-venv" pip install -q "$wheel" || fail "pip install of the wheel"
use_package "$work/wheel-venv"

echo "== pip install bindings/python in a fresh venv"
rm -rf "$pkg/build" "$pkg/turbopump.egg-info"
"$py" -m venv "$work/tree-venv"
# the plugin's build was checked with the wheel: not again, it is the slow part
(cd "$work" && user_env "$work/tree-venv" env TP_CUDA=0 pip install -q "$pkg") ||
  fail "pip install bindings/python"
use_package "$work/tree-venv"
echo "package: ok"
