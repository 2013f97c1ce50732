#!/usr/bin/env bash
# A change measured side by side: a package's Go benchmarks built at two
# commits and run in turn, in ABBA order (on a busy machine, pairs always in
# one order favour whichever runs second), then the median of each figure
# per commit and NEW/BASE.
#
#   test/bench/ab.sh BASE NEW PKG REGEX [ROUNDS] [BENCHTIME]
#   test/bench/ab.sh 4f16a2f HEAD ./internal/opa 'Verdict/evaluator=vm' 6 250ms
#
# ROUNDS (default 4) ABBA rounds run each binary 2×ROUNDS times; BENCHTIME
# (default 1s) is -test.benchtime (20000x for a fixed count). The
# environment reaches the benchmarks: PERMATRIX_BENCH_DB and
# PERMATRIX_BENCH_CHECKS (and _WARM) for DecideStore (docs/performance.md), GOGC.
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
base=$1 new=$2 pkg=$3 re=$4 rounds=${5:-4} benchtime=${6:-1s}
. "$(dirname "$0")/sides.sh"
sides "$base" "$new" 'go test -c -o "$work/$side.test" "$pkg"'
run() { # side: one run of its binary, its benchmark lines prefixed with the side
  (cd "$work/$1/$pkg" && "$work/$1.test" -test.run '^$' -test.bench "$re" -test.benchtime "$benchtime" -test.benchmem) |
    grep '^Benchmark' | sed "s/^/$1 /"
}
for i in $(seq "$rounds"); do
  for side in base new new base; do run $side; done
  echo "round $i of $rounds" >&2
done >"$work/runs.txt"
# Each line: side name iterations (value unit)...; a figure is a value and its unit.
awk '
{ for (i = 4; i + 1 <= NF; i += 2) { key = $2 SUBSEP $(i + 1); v[$1, key, ++n[$1, key]] = $i; keys[key] = 1 } }
function median(side, key,   m, i, j, t, a) {
  m = n[side, key]
  for (i = 1; i <= m; i++) a[i] = v[side, key, i]
  for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
  return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
  for (key in keys) {
    split(key, k, SUBSEP)
    b = median("base", key); w = median("new", key)
    printf "%-60s %-14s %14.6g %14.6g %8.3f\n", k[1], k[2], b, w, (b == 0 ? 0 : w / b)
  }
}' "$work/runs.txt" | sort >"$work/table.txt"
printf "%-60s %-14s %14s %14s %8s\n" benchmark figure base new new/base
cat "$work/table.txt"
echo "($((2 * rounds)) runs of each, ABBA)" >&2
