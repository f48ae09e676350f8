#!/usr/bin/env bash
# The seed's A/B: interleaved fresh-process runs of two soakd sides (two
# profiles or two builds), mean / median / CV per side, the delta, and a
# GO / NEUTRAL / NO-GO verdict written as markdown under docs/perf/.
# The work is in ab.py (argument parsing, statistics and process handling
# are simpler and sturdier there); see `scripts/ab.sh --help`.
set -euo pipefail
command -v python3 >/dev/null || {
	echo "ab.sh: python3 is required (apt-get install -y python3)" >&2
	exit 2
}
exec python3 "$(dirname "${BASH_SOURCE[0]}")/ab.py" "$@"
