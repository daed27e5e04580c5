#!/usr/bin/env bash
# The benchmark table in one command, from a fresh clone (Debian 12, as root):
#   bench/compare.sh [--quick] [--samples N] [--runs R] [--work DIR] [--skip PARTS]
#                    [--photos [DIR]] [--no-warmup]
# Installs what is missing (the build dependencies, fio, tjbench; current torch and
# torchvision and the peers from PyPI into build/bench-venv, with the Debian libraries they
# need: a peer that cannot be installed is reported as such), builds turbopump and its
# Python package, then runs bench/compare.py (its docstring says what is measured).
# --quick: 2,000 JPEGs and one run of each loader, a few minutes; the default takes longer.
# --skip au,limits: the loader table alone. --photos: JPEGs cut from real photographs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
need=()
command -v fio >/dev/null || need+=(fio)
command -v tjbench >/dev/null || need+=(libjpeg-turbo-progs)
/usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/build.sh build >/dev/null
venv=build/bench-venv
bash bench/peers/install.sh "$venv" >&2
# the package under test, built for the venv's Python (no GPU plugin needed here)
TP_CUDA=0 "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation --upgrade \
  bindings/python 2>&1 | grep -v "^WARNING: Running pip as" >&2 || true
rm -rf bindings/python/build bindings/python/turbopump.egg-info
TURBOPUMP=$PWD/build/tools/turbopump exec "$venv/bin/python" bench/compare.py \
  --peers-json "$venv/peers.json" "$@"
