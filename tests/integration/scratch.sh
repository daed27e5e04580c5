# Sourced by the integration scripts: `scratch_dir PREFIX` makes a scratch directory with
# root/ in it and moves there; on exit every pid in PIDS is killed and the directory
# removed. Also fail() for a test's verdict.
scratch_dir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1-XXXXXX")
    PIDS=()
    trap scratch_cleanup EXIT
    cd "$WORK"
    mkdir root
}
scratch_cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
fail() { echo "FAIL: $*" >&2; exit 1; }
