#!/usr/bin/env bash
# Builds mimalloc in its secure mode (MI_SECURE=4: guard pages, encoded free
# lists, double-free detection, randomised allocation) as a preloadable
# library, for the benchmark suite's "mi-secure" column: Debian ships no
# secure build. The C source is the one the `mimalloc` dev-dependency builds
# (crate libmimalloc-sys, fetched into cargo's registry); its version is
# printed, since it differs from Debian's libmimalloc2.0.
# usage: scripts/build_mimalloc_secure.sh   (writes target/mimalloc-secure/libmimalloc-secure.so)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fetch --quiet
src=$(cargo metadata --format-version 1 |
    python3 -c 'import json, sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "libmimalloc-sys"))')
src=$(dirname "$src")/c_src/mimalloc/v2
[[ -f $src/src/static.c ]] || { echo "build_mimalloc_secure: no mimalloc source at $src" >&2; exit 1; }
out=target/mimalloc-secure
mkdir -p "$out"
cc -O3 -DNDEBUG -DMI_SECURE=4 -DMI_MALLOC_OVERRIDE -fPIC -shared -fvisibility=hidden \
    -I"$src/include" "$src/src/static.c" -o "$out/libmimalloc-secure.so" -lpthread
version=$(sed -n 's/^#define MI_MALLOC_VERSION \([0-9]*\).*/\1/p' "$src/include/mimalloc.h")
echo "$out/libmimalloc-secure.so (mimalloc $((version / 10000)).$((version / 100 % 100)).$((version % 100)), MI_SECURE=4)"
