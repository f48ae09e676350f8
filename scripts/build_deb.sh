#!/usr/bin/env bash
# Builds the Debian package of soakd: release soakd and libhakmem.so, then
# `cargo deb` (crate cargo-deb, installed by scripts/setup.sh) packages them
# with the profiles, the systemd unit, the dashboards and the rules as
# soakd/Cargo.toml's [package.metadata.deb] lists them. Prints the .deb's
# path; by default it lands in target/debian/.
# usage: scripts/build_deb.sh [cargo-deb options, e.g. -o DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
	echo "build_deb: cargo-deb is not installed; run scripts/setup.sh" >&2
	exit 1
}
cargo build --release -p soakd -p hakmem-capi
# --no-build: cargo-deb would build soakd only, not libhakmem.so.
# --strip: the release profile keeps line tables (debug = 1) for profiling.
cargo deb -p soakd --no-build --strip "$@"
