#!/usr/bin/env bash
# Measures what patching costs before there is a JIT: start-up (-c pass /
# -e '') and whole-program time of loop-heavy programs, original against
# patched (counting runtime on), interleaved A B A B ..., medians and the
# ratio of medians. Usage: scripts/measure-overhead.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
runs=${1:-11}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
make -s build >/dev/null
bin/redmagic-patch /usr/bin/python3.11 -o "$out/python3.11" >/dev/null
bin/redmagic-patch /usr/bin/lua5.4 -o "$out/lua5.4" >/dev/null

now() { date +%s%N; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

measure() { # NAME ORIGINAL PATCHED ARGS...
  local name=$1 orig=$2 patched=$3; shift 3
  : > "$out/a"; : > "$out/b"
  "$orig" "$@" >/dev/null; "$patched" "$@" >/dev/null # warm-up
  for ((i = 0; i < runs; i++)); do
    local t0 t1 t2
    t0=$(now); "$orig" "$@" >/dev/null; t1=$(now); "$patched" "$@" >/dev/null; t2=$(now)
    echo "$(( (t1 - t0) / 1000 ))" >> "$out/a"
    echo "$(( (t2 - t1) / 1000 ))" >> "$out/b"
  done
  local ma mb
  ma=$(median < "$out/a"); mb=$(median < "$out/b")
  awk -v n="$name" -v a="$ma" -v b="$mb" 'BEGIN {printf "%-28s original %9.1f ms  patched %9.1f ms  patched/original %.3f  (+%.2f ms)\n", n, a/1000, b/1000, b/a, (b-a)/1000}'
}

echo "interleaved runs: $runs each, medians"
measure "python3.11 -c pass" /usr/bin/python3.11 "$out/python3.11" -c pass
measure "lua5.4 -e ''" /usr/bin/lua5.4 "$out/lua5.4" -e ''
measure "python while 10**7" /usr/bin/python3.11 "$out/python3.11" -c 'i = 0
while i < 10**7: i += 1'
measure "python for-range 10**7 (fn)" /usr/bin/python3.11 "$out/python3.11" -c 'def f():
    s = 0
    for i in range(10**7): s += i
    return s
f()'
measure "lua for 1e8" /usr/bin/lua5.4 "$out/lua5.4" -e 'local s=0 for i=1,1e8 do s=s+i end'
measure "lua while 3e7" /usr/bin/lua5.4 "$out/lua5.4" -e 'local i=0 while i<3e7 do i=i+1 end'
