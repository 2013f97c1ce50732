#!/usr/bin/env bash
# A change measured over HTTP, side by side: `permatrix serve` built at two
# commits, each served in turn on one store (a run's kept store: run.sh
# --keep) and loaded by wrk with one body mix, in ABBA order (on a busy
# machine, pairs in one order favour whichever runs second); then the
# median req/s of each and NEW/BASE.
#
#   test/bench/abhttp.sh BASE NEW DB BODIES [ROUNDS] [SECONDS]
#   test/bench/abhttp.sh 9662081 8351c83 work/permatrix.db work/cold.ndjson 3
#
# Each run: serve starts on DB (port 18182), a 3 s warm-up, then wrk -t2
# -c16 for SECONDS (default 8) with check.lua over BODIES; serve stops.
# Nothing else should run meanwhile.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
base=$1 new=$2 db=$(realpath "$3") bodies=$(realpath "$4") rounds=${5:-3} secs=${6:-8}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/sides.sh"
sides "$base" "$new" 'go build -o "$work/$side.bin" ./cmd/permatrix'
addr=127.0.0.1:18182
run() { # side: one served run, "side req/s"
  "$work/$1.bin" serve --addr "$addr" --db "$db" >"$work/serve.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do curl -sf "http://$addr/health/ready" >/dev/null && break; sleep 0.2; done
  BENCH_BODIES=$bodies BENCH_THREADS=2 wrk -t2 -c16 -d3s -s "$here/check.lua" "http://$addr" >/dev/null
  local rps
  rps=$(BENCH_BODIES=$bodies BENCH_THREADS=2 wrk -t2 -c16 -d"${secs}s" -s "$here/check.lua" "http://$addr" | awk '/Requests\/sec/ { print $2 }')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "$1 $rps"
}
for i in $(seq "$rounds"); do
  for side in base new new base; do run $side; done
  echo "round $i of $rounds" >&2
done | tee "$work/runs.txt"
awk '
{ v[$1, ++n[$1]] = $2 }
function median(side,   m, i, j, t, a) {
  m = n[side]
  for (i = 1; i <= m; i++) a[i] = v[side, i]
  for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END { b = median("base"); w = median("new"); printf "req/s median: base %.0f, new %.0f, new/base %.3f\n", b, w, w / b }
' "$work/runs.txt"
