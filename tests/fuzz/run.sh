#!/usr/bin/env bash
# Fuzzes every target (or those named) for SECONDS each with libFuzzer, one after another,
# and prints a table of executions, new corpus inputs and crashes.
#
#   tests/fuzz/run.sh [--seconds N] [--build DIR] [--jobs N] [target...]
#
# It builds DIR (default build-fuzz) with clang and TP_FUZZ=ON. Each target starts from a
# scratch copy of tests/fuzz/corpus/TARGET. Afterwards the inputs that add coverage are
# merged back into tests/fuzz/corpus/TARGET, so CTest replays them, and any crash input is
# left in DIR/fuzz-out/TARGET/ with libFuzzer's log beside it. Exit status 1 when any
# target found one.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
seconds=600 build=$src/build-fuzz jobs=1
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --build) build=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$src"/tests/fuzz/fuzz_*.c; do t=${f##*/fuzz_}; targets+=("${t%.c}"); done
fi

command -v clang >/dev/null || { echo "run.sh: clang is needed (apt-get install clang)" >&2; exit 2; }
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DTP_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

out=$build/fuzz-out
printf '%-10s %8s %14s %10s %8s\n' target seconds executions new_inputs crashes
found=0
for t in "${targets[@]}"; do
    dir=$out/$t
    rm -rf "$dir"; mkdir -p "$dir/corpus" "$dir/merged"
    cp -r "$src/tests/fuzz/corpus/$t/." "$dir/corpus/"
    rc=0
    (cd "$dir" && "$build/tests/fuzz_$t" -max_total_time="$seconds" -jobs="$jobs" \
        -workers="$jobs" -print_final_stats=1 -artifact_prefix="$dir/" corpus \
        >"$dir/log" 2>&1) || rc=$?
    # With -jobs, each job logs to fuzz-N.log; sum their execution counts.
    execs=$(cat "$dir/log" "$dir"/fuzz-*.log 2>/dev/null |
            awk '/stat::number_of_executed_units:/ {n += $2} END {print n + 0}')
    crashes=$(find "$dir" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
              -o -name 'oom-*' \) | wc -l)
    "$build/tests/fuzz_$t" -merge=1 "$dir/merged" "$src/tests/fuzz/corpus/$t" "$dir/corpus" \
        >"$dir/merge.log" 2>&1 || true
    added=0
    for f in "$dir/merged"/*; do
        [ -e "$f" ] || continue
        [ -e "$src/tests/fuzz/corpus/$t/${f##*/}" ] && continue
        cp "$f" "$src/tests/fuzz/corpus/$t/"; added=$((added + 1))
    done
    printf '%-10s %8s %14s %10s %8s\n' "$t" "$seconds" "$execs" "$added" "$crashes"
    found=$((found + crashes))
    [ "$rc" -eq 0 ] || [ "$crashes" -gt 0 ] || echo "  $t: libFuzzer exited $rc, see $dir/log" >&2
done
if [ "$found" -gt 0 ]; then
    echo "run.sh: $found crash, leak, timeout or out-of-memory inputs under $out" >&2
    exit 1
fi
