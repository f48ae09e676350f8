#!/usr/bin/env bash
# A soak of one profile: soakd for one long epoch (60 minutes by default),
# its results in a dated folder, and a summary at the end.
#
#   scripts/soak.sh PROFILE [--minutes N] [options]
#
# See usage() below and docs/operations.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
	cat <<EOF
Usage: scripts/soak.sh PROFILE [options] [-- SOAKD_RUN_ARGS...]

PROFILE is a name in config/ (balanced, speed-first, lean, ci, ...) or a path
to a profile TOML file.

Options:
  --minutes N      epoch length in minutes (default 60)
  --seconds N      epoch length in seconds instead (smoke tests)
  --epochs N       epochs to run (default 1)
  --soakd PATH     soakd binary (default: build target/release/soakd)
  --results DIR    parent of the dated results folder (default soak-results/
                   at the repository root)
  --listen ADDR    /metrics address (default: the profile's, 127.0.0.1:9464)
  -h, --help       this help

Anything after -- goes to 'soakd run' as is.
Results: DIR/<YYYYmmdd-HHMMSS>-<profile>/ with epochs.jsonl, soakd.log,
run.txt (what ran where), summary.txt ('soakd report') and report.html
(throughput and RSS plotted, with each epoch's verdict).
Ctrl-C stops soakd cleanly: the partial epoch is written and summarised.
EOF
}

die() {
	echo "soak.sh: $*" >&2
	exit 2
}

[[ $# -ge 1 ]] || {
	usage >&2
	exit 2
}
case "$1" in
-h | --help)
	usage
	exit 0
	;;
-*) die "the first argument must be the profile, not $1" ;;
esac
profile="$1"
shift

epoch_secs=3600
epochs=1
soakd=""
results="$ROOT/soak-results"
listen=""
extra=()
while [[ $# -gt 0 ]]; do
	case "$1" in
	--minutes)
		[[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--minutes needs a positive whole number"
		epoch_secs=$(($2 * 60))
		shift 2
		;;
	--seconds)
		[[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--seconds needs a positive whole number"
		epoch_secs=$2
		shift 2
		;;
	--epochs)
		[[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--epochs needs a positive whole number"
		epochs=$2
		shift 2
		;;
	--soakd)
		soakd="${2:?--soakd needs a path}"
		shift 2
		;;
	--results)
		results="${2:?--results needs a folder}"
		shift 2
		;;
	--listen)
		listen="${2:?--listen needs an address}"
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	--)
		shift
		extra=("$@")
		break
		;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done

if [[ -f "$profile" ]]; then
	config="$profile"
	name="$(basename "$profile" .toml)"
elif [[ -f "$ROOT/config/$profile.toml" ]]; then
	config="$ROOT/config/$profile.toml"
	name="$profile"
else
	die "no profile '$profile': not a file, and no $ROOT/config/$profile.toml"
fi

if [[ -z "$soakd" ]]; then
	# cargo is a no-op when the binary is up to date.
	echo "soak.sh: building release soakd" >&2
	(cd "$ROOT" && cargo build --release -p soakd --bin soakd) >&2
	# cargo reads a relative CARGO_TARGET_DIR from where it ran: $ROOT.
	target="${CARGO_TARGET_DIR:-target}"
	[[ "$target" == /* ]] || target="$ROOT/$target"
	soakd="$target/release/soakd"
fi
[[ -x "$soakd" ]] || die "soakd binary $soakd is not executable"

# Check the profile before making a folder, so a typo costs nothing.
"$soakd" check-config "$config" >/dev/null || die "profile $config is invalid (see above)"

dir="$results/$(date +%Y%m%d-%H%M%S)-$name"
mkdir -p "$dir"
cp "$config" "$dir/profile.toml"

args=(run --config "$config" --epoch-secs "$epoch_secs" --epochs "$epochs" --out "$dir")
[[ -n "$listen" ]] && args+=(--listen "$listen")
args+=("${extra[@]}")

{
	echo "profile: $name ($config)"
	echo "epoch_secs: $epoch_secs"
	echo "epochs: $epochs"
	echo "soakd: $soakd"
	echo "command: $soakd ${args[*]}"
	echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
	"$soakd" host # the machine lines: host, os, cpu, memory, build, malloc, load
	echo "started: $(date -Iseconds)"
} >"$dir/run.txt"

total=$((epoch_secs * epochs))
echo "soak.sh: $name for $epochs x ${epoch_secs}s (ends about $(date -d "+$total seconds" +%H:%M)); results in $dir" >&2

# soakd runs in the background so a Ctrl-C or TERM here reaches it as SIGTERM
# (it then writes the running epoch and exits) and this script still writes
# the summary of what was done.
"$soakd" "${args[@]}" > >(tee "$dir/soakd.log") 2>&1 &
pid=$!
interrupted=0
trap 'interrupted=1; kill -TERM "$pid" 2>/dev/null || true' INT TERM
while :; do
	status=0
	wait "$pid" || status=$?
	# A trapped signal ends `wait` early, with soakd still shutting down.
	kill -0 "$pid" 2>/dev/null || break
done
trap - INT TERM
echo "finished: $(date -Iseconds) (soakd exit $status$([[ $interrupted == 1 ]] && echo ', interrupted'))" >>"$dir/run.txt"

if [[ ! -s "$dir/epochs.jsonl" ]]; then
	echo "soak.sh: soakd wrote no epoch (exit $status); see $dir/soakd.log" >&2
	exit 1
fi
"$soakd" report "$dir/epochs.jsonl" --html "$dir/report.html" | tee "$dir/summary.txt"
echo "soak.sh: results in $dir" >&2
if [[ $interrupted == 1 ]]; then
	# Shorter than asked: not a full soak, whatever soakd's own exit.
	echo "soak.sh: interrupted; the last epoch is partial (\"complete\": false)" >&2
	exit 130
fi
exit "$status"
