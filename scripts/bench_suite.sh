#!/usr/bin/env bash
# Benchmark (not a test): the classic allocator workload shapes of issue 9,
# each a C program of ours under allocator/capi/bench/ (its header comment
# says the shape and the public benchmark it follows), run under LD_PRELOAD
# with libhakmem.so (default profile, and as column "hardened" the same
# library under HAKMEM_PROFILE=hardened), Debian's libmimalloc2.0 and
# libjemalloc2, glibc's own malloc, and (column "mi-secure", when built by
# scripts/build_mimalloc_secure.sh) mimalloc in its secure mode:
#
#   larson         server with thread churn (larson), plain free
#   larson-sized   the same with sized free (larson-sized)
#   mstress        stress with thread churn (mimalloc's test-stress)
#   large          big-buffer replacement (malloc-large)
#   live           many live objects on one thread (alloc-test)
#   simple         fixed-size loops of 16-byte blocks (glibc-simple)
#   xchurn         32-thread churn with cross-thread transfers (xmalloc-test)
#   prodcons       producer/consumer of small blocks, bulk frees
#   mixed          SPEC section 4's mixed tiny path, 1 thread (mixed.c)
#
# Every program does fixed work and prints the wall time of its measured part
# ("seconds="; lower is better); mixed.c runs for a fixed time, so its row
# shows the time 10^7 operations took at its measured rate. Each run goes
# through bench/peakrss.c, which reports the process's peak RSS (ru_maxrss).
# Allocators are interleaved within every row of every round, the order
# rotating from round to round and row to row, so that drifting machine load
# hits them alike; each figure is the median of RUNS runs. A run whose malloc
# (dladdr, printed by the program) is not served by the library preloaded for
# it stops the script: no figure from a preload that silently failed.
# Prints a markdown table: per row and allocator, the median time, its ratio
# to mimalloc's (lower is better) and the median peak RSS.
#
# usage: scripts/bench_suite.sh
# env:   RUNS (default 5),
#        SCALE: default (a few minutes on 2 cores with RUNS=5), smoke (seconds
#        in all: only proves the programs run) or full (the public benchmarks'
#        own sizes, e.g. 2,000 big-buffer replacements: tens of minutes),
#        ONLY (space-separated row names: run just those rows),
#        MIMALLOC, JEMALLOC (paths of the preloadable libraries),
#        MIMALLOC_SECURE (default target/mimalloc-secure/libmimalloc-secure.so;
#        empty: no mi-secure column),
#        HAKMEM (a libhakmem.so to measure instead of this tree's release
#        build, e.g. an older commit's for a before/after table),
#        BENCH_TIMEOUT (seconds one program may run, default 600)
# needs: cargo, cc, coreutils, and apt packages libmimalloc2.0 libjemalloc2
# (scripts/setup.sh)
set -euo pipefail

runs=${RUNS:-5}
scale=${SCALE:-default}
limit=${BENCH_TIMEOUT:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
mimalloc=$(abs "${MIMALLOC:-/usr/lib/x86_64-linux-gnu/libmimalloc.so.2}")
jemalloc=$(abs "${JEMALLOC:-/usr/lib/x86_64-linux-gnu/libjemalloc.so.2}")
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive integer" >&2; exit 1; }
[[ -f $mimalloc ]] || { echo "missing $mimalloc: apt-get install libmimalloc2.0" >&2; exit 1; }
[[ -f $jemalloc ]] || { echo "missing $jemalloc: apt-get install libjemalloc2" >&2; exit 1; }

# Rows: name|shape|program and arguments at SCALE default|smoke|full|metric.
# metric "seconds" reads seconds=; "ops:N" reads ops_per_sec= and reports the
# time of N operations.
rows=(
    "larson|server with thread churn, 2 threads|larson -t 2 -g 20 -n 500000|larson -t 2 -g 4 -n 5000|larson -t 2 -g 100 -n 500000|seconds"
    "larson-sized|the same with sized free|larson -z -t 2 -g 20 -n 500000|larson -z -t 2 -g 4 -n 5000|larson -z -t 2 -g 100 -n 500000|seconds"
    "mstress|stress with thread churn, 2 threads|mstress 2 50 50|mstress 2 5 4|mstress 2 50 250|seconds"
    "large|20 big buffers (5-25 MiB), calloc replacements|large 200|large 6|large 2000|seconds"
    "live|1 thread, up to 512k live objects|live 8000000 524288|live 200000 32768|live 40000000 524288|seconds"
    "simple|1 thread, loops of N 16-byte blocks|simple 20000000 16|simple 400000 16|simple 200000000 16|seconds"
    "xchurn|32 threads re-created each round, cross-thread frees|xchurn 32 20 10000|xchurn 32 2 500|xchurn 32 20 100000|seconds"
    "prodcons|producer/consumer, bulk frees, 2 threads|prodcons 10000000 1 1000|prodcons 200000 1 1000|prodcons 50000000 1 1000|seconds"
    "mixed|mixed tiny path (SPEC 4), 1 thread|mixed -t 1 -d 1|mixed -t 1 -d 0.05|mixed -t 1 -d 5|ops:10000000"
)
case $scale in
default) col=2 ;;
smoke) col=3 ;;
full) col=4 ;;
*) echo "SCALE must be default, smoke or full" >&2; exit 1 ;;
esac
if [[ -n ${ONLY:-} ]]; then
    kept=()
    for r in "${rows[@]}"; do [[ " $ONLY " == *" ${r%%|*} "* ]] && kept+=("$r"); done
    ((${#kept[@]})) || { echo "ONLY names no row" >&2; exit 1; }
    rows=("${kept[@]}")
fi
field() { local f; IFS='|' read -ra f <<<"$1"; echo "${f[$2]}"; }

# The libhakmem.so to measure: $HAKMEM, or this tree's release build.
. "$root/scripts/libhakmem.sh" "$root"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for prog in larson mstress large live simple xchurn prodcons mixed peakrss; do
    cc -O2 -fno-builtin -Wall -Wextra -Werror -pthread -o "$work/$prog" \
        "$root/allocator/capi/bench/$prog.c" -ldl
done

names=(hakmem hardened mimalloc jemalloc glibc)
declare -A lib=([hakmem]=$hakmem [hardened]=$hakmem [mimalloc]=$mimalloc [jemalloc]=$jemalloc [glibc]="")
# The hardened column is libhakmem.so with its profile chosen at start-up.
declare -A environment=([hardened]=HAKMEM_PROFILE=hardened)
secure=${MIMALLOC_SECURE-$root/target/mimalloc-secure/libmimalloc-secure.so}
if [[ -n $secure && -f $secure ]]; then
    names+=(mi-secure)
    lib[mi-secure]=$(abs "$secure")
elif [[ -n $secure ]]; then
    echo "no $secure (scripts/build_mimalloc_secure.sh builds it): no mi-secure column" >&2
fi

# run ROW ALLOC: one run of ROW's program under ALLOC; its time and peak RSS
# are appended to $work/ROW.ALLOC.time and .rss.
run() {
    local row=$1 alloc=$2 name cmd metric out served value argv extra=()
    name=$(field "$row" 0)
    cmd=$(field "$row" "$col")
    metric=$(field "$row" 5)
    read -ra argv <<<"$cmd"
    argv[0]=$work/${argv[0]}
    [[ -n ${environment[$alloc]:-} ]] && extra=("${environment[$alloc]}")
    # Only the program is preloaded (through env), not the wrappers.
    out=$(timeout "$limit" "$work/peakrss" env LD_PRELOAD="${lib[$alloc]}" "${extra[@]}" "${argv[@]}") ||
        { echo "$name under $alloc failed (status $?): $cmd" >&2; echo "$out" >&2; exit 1; }
    served=$(sed -n 's/^malloc=//p' <<<"$out")
    if [[ $alloc == glibc ]]; then
        [[ $served == */libc.so* ]]
    else
        [[ $served == "${lib[$alloc]}" ]]
    fi || {
        echo "refusing to report $alloc: $name's malloc is served by '$served', not by ${lib[$alloc]:-libc}" >&2
        exit 1
    }
    case $metric in
    seconds) value=$(sed -n 's/^seconds=//p' <<<"$out") ;;
    ops:*) value=$(sed -n 's/^ops_per_sec=//p' <<<"$out" | awk -v n="${metric#ops:}" '{printf "%.6f", n / $1}') ;;
    esac
    [[ $value =~ ^[0-9.]+$ ]] || { echo "$name under $alloc: no time in its output:" >&2; echo "$out" >&2; exit 1; }
    echo "$value" >>"$work/$name.$alloc.time"
    sed -n 's/^peak_rss_kib=//p' <<<"$out" >>"$work/$name.$alloc.rss"
}

median() { sort -g "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date +%s)
for ((r = 0; r < runs; r++)); do
    for ((w = 0; w < ${#rows[@]}; w++)); do
        for ((i = 0; i < ${#names[@]}; i++)); do
            run "${rows[$w]}" "${names[(i + r + w) % ${#names[@]}]}"
        done
    done
done
elapsed=$(($(date +%s) - start))

commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$root" status --porcelain 2>/dev/null) ]] || commit="$commit (dirty)"
echo "Allocator workload suite (scripts/bench_suite.sh), SCALE=$scale, LD_PRELOAD, median of $runs runs, interleaved; ${elapsed}s in all."
echo "libhakmem.so: $hakmem${HAKMEM:+ (given by HAKMEM)}."
echo "Commit $commit; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after."
echo
echo "Each cell: median wall time (ratio to mimalloc's time: lower is better), median peak RSS."
echo
header="| workload | hakmem / mimalloc |" rule="|---|---|"
for alloc in "${names[@]}"; do header+=" $alloc |" rule+="---|"; done
echo "$header"
echo "$rule"
for row in "${rows[@]}"; do
    name=$(field "$row" 0)
    base=$(median "$work/$name.mimalloc.time")
    line="| $name: $(field "$row" 1) |"
    line+=$(awk -v m="$(median "$work/$name.hakmem.time")" -v b="$base" 'BEGIN {if (b <= 0) b = 1e-6; printf " **%.2fx** |", m / b}')
    for alloc in "${names[@]}"; do
        line+=$(awk -v m="$(median "$work/$name.$alloc.time")" -v b="$base" -v k="$(median "$work/$name.$alloc.rss")" \
            'BEGIN {if (b <= 0) b = 1e-6; printf " %.3f s (%.2fx), %.1f MiB |", m, m / b, k / 1024}')
    done
    echo "$line"
done
echo
echo "Commands (allocator/capi/bench/, SCALE=$scale):"
echo
for row in "${rows[@]}"; do
    metric=$(field "$row" 5)
    note=""
    [[ $metric == ops:* ]] && note=" (time of ${metric#ops:} operations at the measured ops_per_sec)"
    echo "- $(field "$row" 0): \`$(field "$row" "$col")\`$note"
done
