#!/usr/bin/env bash
# One command for every row of docs/performance.md: builds permatrix, the
# pinned stock opa and the hello-world Echo floor, generates the seeded
# dataset, loads it, and measures import, cold start, RSS, export, HTTP
# decisions (wrk closed loop, vegeta open loop), writes and the Go
# benchmarks side by side (test/bench/README.md). Flags go to permabench:
#   test/bench/run.sh                    # quick: 20 000 users (40 000 assignments)
#   test/bench/run.sh --users 500000     # the 1M-assignment store
# Results: test/bench/results/<date>-<users>u/results.{json,md}.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "wrk is missing: apt-get install -y wrk" >&2
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  else
    echo "wrk is missing: install it (Debian/Ubuntu: sudo apt-get install -y wrk)" >&2
    exit 1
  fi
fi
cd permabench
exec go run . "$@"
