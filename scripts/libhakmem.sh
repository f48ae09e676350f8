# Sourced by the benchmark scripts: sets `hakmem` to the libhakmem.so to
# measure, `$HAKMEM` if given (e.g. an older commit's build for a
# before/after table), else this tree's release build, whose path comes from
# cargo itself so that CARGO_TARGET_DIR and friends are honoured.
# usage: . scripts/libhakmem.sh ROOT
if [[ -n ${HAKMEM:-} ]]; then
    case $HAKMEM in /*) hakmem=$HAKMEM ;; *) hakmem=$PWD/$HAKMEM ;; esac
else
    hakmem=$(cargo build --release -p hakmem-capi --manifest-path "$1/Cargo.toml" \
        --message-format=json-render-diagnostics |
        grep -o '"filenames":\["[^"]*libhakmem\.so"' | sed 's/.*\["//; s/"$//')
fi
[[ -f $hakmem ]] || { echo "no libhakmem.so at '$hakmem'" >&2; exit 1; }
