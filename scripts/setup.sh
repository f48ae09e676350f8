#!/usr/bin/env bash
# Installs what hakmem's tests and benchmarks need on a fresh Debian machine
# (run as root): a C toolchain for the C ABI tests, Prometheus and promtool for
# the integration tests, the real programs run under LD_PRELOAD, the
# preloadable mimalloc and jemalloc the C benchmark and `soakd compare`
# compare against, Chromium to render soakd's HTML reports in a test,
# systemd-analyze for the unit's test, and cargo-deb for the Debian package.
set -euo pipefail

packages=(
	build-essential libc6-dev      # cc/c++ for the C ABI tests and C benchmark
	prometheus                     # prometheus + promtool (soakd and e2e tests)
	python3 git xz-utils coreutils # real programs under LD_PRELOAD; ab.sh
	libmimalloc2.0 libjemalloc2    # bench_preload.sh, bench_suite.sh, soakd compare
	chromium                       # renders soakd's HTML reports in a test (headless)
	systemd dpkg-dev               # systemd-analyze verify of dist/soakd.service; dpkg-shlibdeps for cargo-deb
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a Prometheus service where systemd runs; tests
# start their own on loopback, so it is not needed.
command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup)" >&2; exit 1; }
# scripts/build_deb.sh and its test; pinned, with its own lock file, so a new
# release cannot change the package under us.
cargo_deb_version=3.8.0
if ! cargo install --list | grep -qx "cargo-deb v$cargo_deb_version:"; then
	cargo install --locked cargo-deb --version "$cargo_deb_version"
fi
