#!/usr/bin/env bash
# Runs a Python test file (relative to this directory; pytest arguments may follow) with an
# interpreter that has pytest, NumPy and Pillow (the python3 on PATH, else Debian's /usr/bin/python3);
# skips (exit 77) when none has them. With TP_PYTHON_PACKAGE set, the turbopump package
# (bindings/python) is first built with that interpreter into a scratch directory, which
# the tests then import.
set -u
here=$(cd "$(dirname "$0")" && pwd)
for py in python3 /usr/bin/python3; do
  "$py" -c 'import pytest, numpy, PIL' 2>/dev/null || continue
  if [ -n "${TP_PYTHON_PACKAGE:-}" ]; then
    site=$(mktemp -d "${TMPDIR:-/tmp}/tp-py-XXXXXX")
    pkg=$here/../../bindings/python
    # pip builds in the source tree; what it leaves there goes with the scratch directory
    trap 'rm -rf "$site" "$pkg/build" "$pkg/turbopump.egg-info"' EXIT
    "$py" -m pip install -q --no-deps --no-build-isolation --target "$site" "$pkg" 2>&1 |
      grep -v "^WARNING: Running pip as" >&2
    [ -f "$site/turbopump/__init__.py" ] || { echo "building the package failed" >&2; exit 1; }
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$py" -m pytest -q -p no:cacheprovider "$here/${1:?usage: run.sh TEST_FILE [PYTEST ARGS]}" \
    "${@:2}"
  rc=$?
  [ "$rc" -eq 5 ] && exit 77   # no tests collected
  exit "$rc"
done
echo "no python3 with pytest, numpy and PIL: skipped" >&2
exit 77
