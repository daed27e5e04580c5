#!/usr/bin/env bash
# Runs the Python tests with an interpreter that has pytest, NumPy and Pillow (the
# python3 on PATH, else Debian's /usr/bin/python3); skips (exit 77) when none has them.
set -u
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import pytest, numpy, PIL' 2>/dev/null; then
    "$py" -m pytest -q -p no:cacheprovider "$(dirname "$0")" "$@"
    rc=$?
    [ "$rc" -eq 5 ] && exit 77   # no tests collected
    exit "$rc"
  fi
done
echo "no python3 with pytest, numpy and PIL: skipped" >&2
exit 77
