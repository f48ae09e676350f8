#!/usr/bin/env bash
# Benchmark (not a test): SPEC section 4's mixed tiny workload, built in C
# (allocator/capi/bench/mixed.c), run under LD_PRELOAD with libhakmem.so,
# Debian's libmimalloc2.0 and libjemalloc2, and with glibc's own malloc.
# Allocators are interleaved within every round (the order rotates each round)
# so that drifting machine load hits them alike; each figure is the median of
# RUNS runs. Also measures the fixed cost of one malloc(32)+free pair
# (allocator/capi/bench/pair.c). Prints markdown tables.
#
# usage: scripts/bench_preload.sh
# env:   RUNS (default 5), BENCH_SECONDS per run (default 1),
#        METRIC: wall (default; SPEC's ops per second) or cpu (ops x threads
#        / CPU time: the rate with a core per thread, steadier on a machine
#        shared with other work),
#        MIMALLOC, JEMALLOC (paths of the preloadable libraries),
#        HAKMEM (a libhakmem.so to measure instead of this tree's release build,
#        e.g. an older commit's for a before/after table)
# needs: cargo, cc, and apt packages libmimalloc2.0 libjemalloc2
set -euo pipefail

runs=${RUNS:-5}
metric=${METRIC:-wall}
case $metric in
wall) field=ops_per_sec unit=Mops/s ;;
cpu) field=ops_per_cpu_sec unit=Mops/cpu-s ;;
*) echo "METRIC must be wall or cpu" >&2; exit 1 ;;
esac
seconds=${BENCH_SECONDS:-1}
mimalloc=${MIMALLOC:-/usr/lib/x86_64-linux-gnu/libmimalloc.so.2}
jemalloc=${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}
root=$(cd "$(dirname "$0")/.." && pwd)

[[ -f $mimalloc ]] || { echo "missing $mimalloc: apt-get install libmimalloc2.0" >&2; exit 1; }
[[ -f $jemalloc ]] || { echo "missing $jemalloc: apt-get install libjemalloc2" >&2; exit 1; }

# The libhakmem.so to measure: $HAKMEM, or this tree's release build.
. "$root/scripts/libhakmem.sh" "$root"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for prog in mixed pair; do
    cc -O2 -fno-builtin -pthread -o "$work/$prog" "$root/allocator/capi/bench/$prog.c" -ldl
done

names=(hakmem mimalloc jemalloc glibc)
declare -A lib=([hakmem]=$hakmem [mimalloc]=$mimalloc [jemalloc]=$jemalloc [glibc]="")
# What dladdr(malloc) must name, so that a preload that silently failed to
# take effect cannot produce a figure.
declare -A serves=([hakmem]=libhakmem [mimalloc]=libmimalloc [jemalloc]=libjemalloc [glibc]=libc.so)
cases=("1 thread, defaults|-t 1" "2 threads, remote_free_ratio 0.3|-t 2 -r 0.3")

# run ALLOC KEY FIELD PROGRAM ARGS...: one run; its FIELD=value figure is
# appended to $work/KEY.ALLOC.
run() {
    local alloc=$1 key=$2 field=$3 out
    shift 3
    out=$(LD_PRELOAD=${lib[$alloc]} "$@")
    grep -q "^malloc=.*${serves[$alloc]}" <<<"$out" ||
        { echo "$alloc: malloc is not served by ${serves[$alloc]}: $out" >&2; exit 1; }
    grep "^$field=" <<<"$out" | cut -d= -f2 >>"$work/$key.$alloc"
}

median() { sort -g "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for ((r = 0; r < runs; r++)); do
    for ((i = 0; i < ${#names[@]}; i++)); do
        alloc=${names[(i + r) % ${#names[@]}]}
        for c in "${!cases[@]}"; do
            read -ra args <<<"${cases[$c]#*|}"
            run "$alloc" "case$c" "$field" "$work/mixed" -d "$seconds" "${args[@]}"
        done
        run "$alloc" pair ns_per_pair "$work/pair" 32 20000000
    done
done

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$root" status --porcelain 2>/dev/null) ]] || commit="$commit (dirty)"
echo "Mixed workload (SPEC 4: working_set 400, sizes 16..=1024 uniform), LD_PRELOAD, median of $runs runs of ${seconds}s, interleaved; metric $field."
echo "libhakmem.so: $hakmem${HAKMEM:+ (given by HAKMEM)}."
echo "Commit $commit; $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| case | hakmem | mimalloc | jemalloc | glibc |"
echo "|---|---|---|---|---|"
for c in "${!cases[@]}"; do
    base=$(median "$work/case$c.mimalloc")
    row="| ${cases[$c]%%|*} |"
    for alloc in "${names[@]}"; do
        m=$(median "$work/case$c.$alloc")
        row+=$(awk -v m="$m" -v b="$base" -v u="$unit" 'BEGIN {printf " %.2f %s (%.2fx) |", m / 1e6, u, m / b}')
    done
    echo "$row"
done
echo
echo "Ratios are to mimalloc. One malloc(32)+free pair through the preloaded library (median ns):"
echo
echo "| hakmem | mimalloc | jemalloc | glibc |"
echo "|---|---|---|---|"
row="|"
for alloc in "${names[@]}"; do row+=" $(median "$work/pair.$alloc") |"; done
echo "$row"
