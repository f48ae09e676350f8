#!/usr/bin/env bash
# Exact instruction counts (valgrind's callgrind; perf counters are not
# available on the project's VMs) of the fixed-count mixed tiny workload
# (allocator/capi/bench/fixed.c) under two preloadable allocators: A (the
# baseline) and B (the candidate), e.g. two builds of libhakmem.so.
#
# usage: scripts/callgrind_ab.sh A.so B.so [ops [min_size max_size]]
# needs: valgrind, cc
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 A.so B.so [ops [min max]]" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -fno-builtin -o "$work/fixed" "$root/allocator/capi/bench/fixed.c"
args=("${@:3}")
count() {
    LD_PRELOAD="$1" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
        "$work/fixed" "${args[@]}" 2>&1 >/dev/null | awk '/Collected :/ {print $NF}'
}
a=$(count "$1")
b=$(count "$2")
# Whole-program counts: the workload's own instructions are the same on both
# sides, so the difference is the allocators'.
awk -v a="$a" -v b="$b" -v A="$1" -v B="$2" 'BEGIN {
    printf "A %s: %d instructions\nB %s: %d instructions\nB/A: %+.2f%%\n", A, a, B, b, (b - a) * 100 / a }'
