#!/usr/bin/env bash
# The GPU checks of the device path, for a machine with an NVIDIA GPU (never run by CI):
#   (a) device batches equal host batches byte for byte (uint8, and float32/float16
#       converted on the GPU against the daemon's CPU conversion),
#   (b) batch H2D bandwidth / cudaMemcpyAsync from cudaMallocHost memory (target >= 0.9),
#   (c) overlap of the consumer's step with the next copies (event timings),
#   (d) the Python loader on CUDA (DLPack, stream ordering), and examples/train_resnet.py
#       --device cuda.
# Builds with CUDA into build-gpu (or uses $TP_GPU_PREBUILT: a directory holding turbopump,
# check_gpu, libturbopump_cuda.so, lib/ and py/ built elsewhere). Finishes in a few minutes.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-python3}
if [ -n "${TP_GPU_PREBUILT:-}" ]; then
  bin=$(cd "$TP_GPU_PREBUILT" && pwd)
  tp=$bin/turbopump check=$bin/check_gpu plugin=$bin/libturbopump_cuda.so
  export LD_LIBRARY_PATH=$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export PYTHONPATH=$bin/py${PYTHONPATH:+:$PYTHONPATH}
else
  build=$src/build-gpu
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTP_WITH_CUDA=ON >/dev/null
  cmake --build "$build" -j"$(nproc)" --target turbopump check_gpu turbopump_cuda >/dev/null
  tp=$build/tools/turbopump check=$build/tests/check_gpu
  plugin=$build/shm/libturbopump_cuda.so
  site=$build/python
  "$py" -m pip install -q --no-deps --no-build-isolation --target "$site" \
    "$src/bindings/python" 2>&1 | grep -v "^WARNING: Running pip as" >&2 || true
  rm -rf "$src/bindings/python/build" "$src/bindings/python/turbopump.egg-info"
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export TURBOPUMP_GPU_PLUGIN=$plugin TURBOPUMP=$tp TURBOPUMP_BIN=$tp PYTHONUNBUFFERED=1

work=$(mktemp -d "${TMPDIR:-/tmp}/tp-gpu-XXXXXX")
daemon=
cleanup() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
t0=$(date +%s)
echo "== data"
"$tp" gen imagefolder "$work/img" --samples 512 --classes 4 --seed 1 >/dev/null
mkdir -p "$work/root"
"$tp" pack "$work/img" "$work/root/img" --quiet
"$tp" gen tensors "$work/root/ten" --samples 6144 --shape 224x224x3 >/dev/null
"$tp" serve --root "$work/root" --socket "$work/tp.sock" --quiet &
daemon=$!
for _ in $(seq 500); do [ -S "$work/tp.sock" ] && break; sleep 0.01; done

status=0
echo "== (a)-(c) check_gpu"
"$check" "$work/tp.sock" img ten || status=1
echo "== (d) Python loader on CUDA"
"$py" "$src/tests/gpu/check_torch.py" "$work/tp.sock" || status=1
echo "== (d) examples/train_resnet.py --device cuda"
"$py" "$src/examples/train_resnet.py" --device cuda \
  --data "$work/train" --samples 2048 --size 224 --batch-size 128 --epochs 3 || status=1
echo "== $(( $(date +%s) - t0 )) s; $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
