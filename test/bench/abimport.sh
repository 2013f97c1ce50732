#!/usr/bin/env bash
# An import change measured side by side: `permatrix import` (offline, into a
# bbolt file) built at two commits and run in turn on the same lines, in ABBA
# order, each run into a fresh copy of one seeded store; then the medians of
# wall time, CPU (user + system) and rate per commit, and NEW/BASE.
#
#   test/bench/abimport.sh BASE NEW WORK [ROUNDS]
#   test/bench/run.sh --users 500000 --work /tmp/w --skip restart,export,opa,http,open,writes,gobench
#   test/bench/abimport.sh main HEAD /tmp/w 3
#
# WORK is the --work directory of a run.sh run: its import.ndjson is
# imported, into a store seeded with the custom roles, projects and
# memberships of its permatrix.db (exported with --format ndjson, those
# records only). ROUNDS (default 3) ABBA rounds run each binary 2×ROUNDS
# times.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
base=$1 new=$2 kept=$3 rounds=${4:-3}
for f in import.ndjson permatrix.db; do
  [ -f "$kept/$f" ] || { echo "abimport: $kept/$f is missing: give the --work directory of a run.sh run" >&2; exit 2; }
done
. "$(dirname "$0")/sides.sh"
sides "$base" "$new" 'go build -o "$work/$side.bin" ./cmd/permatrix'
# The seed: the run's records that are not assignments, imported once.
"$work/base.bin" export --db "$kept/permatrix.db" --format ndjson |
  grep -E '^\{"(custom_role|project|membership)"' >"$work/seed.ndjson" || true
"$work/base.bin" import "$work/seed.ndjson" --db "$work/seed.db" >/dev/null 2>"$work/log" ||
  { echo "abimport: seeding the store failed:" >&2; tail -3 "$work/log" >&2; exit 1; }
echo "seed: $(wc -l <"$work/seed.ndjson") records; import: $(wc -l <"$kept/import.ndjson") lines" >&2
run() { # side: one import into a fresh copy of the seed; prints side wall cpu rate
  rm -f "$work/run.db"
  cp "$work/seed.db" "$work/run.db"
  /usr/bin/time -o "$work/time" -f '%e %U %S' "$work/$1.bin" import "$kept/import.ndjson" --db "$work/run.db" >/dev/null 2>"$work/log" ||
    { echo "abimport: the $1 import failed:" >&2; tail -3 "$work/log" >&2; exit 1; }
  read -r wall user sys <"$work/time"
  lines=$(wc -l <"$kept/import.ndjson")
  awk -v s="$1" -v w="$wall" -v u="$user" -v y="$sys" -v n="$lines" \
    'BEGIN { printf "%s wall %.2f s cpu %.2f s rate %.0f/s\n", s, w, u + y, n / w }'
}
for _ in $(seq "$rounds"); do
  for side in base new new base; do
    run "$side" | tee -a "$work/runs"
  done
done
awk '
  { wall[$1] = wall[$1] " " $3; cpu[$1] = cpu[$1] " " $6; rate[$1] = rate[$1] " " $9 }
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
    return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
  }
  END {
    printf "medians: base wall %.2f s cpu %.2f s rate %.0f/s; new wall %.2f s cpu %.2f s rate %.0f/s\n",
      median(wall["base"]), median(cpu["base"]), median(rate["base"]), median(wall["new"]), median(cpu["new"]), median(rate["new"])
    printf "new/base: wall %.3f cpu %.3f rate %.3f\n", median(wall["new"]) / median(wall["base"]),
      median(cpu["new"]) / median(cpu["base"]), median(rate["new"]) / median(rate["base"])
  }' "$work/runs"
