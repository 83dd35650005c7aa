#!/usr/bin/env bash
# The annotated CPython 2.7's own regression tests (the modules listed in
# scripts/cpython27-tests.txt), one process per module, two at a time.
#
#   cpython27-tests.sh run PYTHON OUTDIR LABEL [VAR=VALUE...]
#       one interpreter: OUTDIR/LABEL.results ("test_x status" per module,
#       sorted) and OUTDIR/LABEL/test_x.log; VAR=VALUE reach the interpreter
#   cpython27-tests.sh compare ORIGINAL PATCHED OUTDIR
#       the original, then the patched copy at the default threshold, at
#       threshold 1 and disabled; every module that passes under the
#       original must pass in each; prints a summary and exits 1 otherwise
#
# Statuses: passed, skipped, failed, timeout (600 s), crashed (a signal).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

modules() {
  sed 's/#.*//' "$here/cpython27-tests.txt" | tr -s ' \t' '\n\n' | grep -E '^test_'
}

# one PYTHON LOGDIR MODULE: runs a module and prints "MODULE status".
one() {
  local py=$1 dir=$2 m=$3 st work
  work=$(mktemp -d)
  set +e
  (cd "$work" && timeout 600 "$py" -E -m test.regrtest "$m") >"$dir/$m.log" 2>&1
  st=$?
  set -e
  rm -rf "$work"
  if [ $st -eq 0 ]; then
    if grep -q '^1 test skipped' "$dir/$m.log"; then echo "$m skipped"; else echo "$m passed"; fi
  elif [ $st -eq 124 ]; then echo "$m timeout"
  elif [ $st -gt 128 ]; then echo "$m crashed"
  else echo "$m failed"
  fi
}
export -f one

run() {
  [ $# -ge 3 ] || usage
  local py out=$2 label=$3
  py=$(readlink -f "$1") # each module runs in a directory of its own
  shift 3
  mkdir -p "$out/$label"
  # The REDMAGIC_ settings of this run only.
  modules | env -u REDMAGIC_THRESHOLD -u REDMAGIC_DISABLE -u REDMAGIC_JIT -u REDMAGIC_JIT_RATE "$@" \
    xargs -P 2 -I{} bash -c 'one "$1" "$2" "$3"' _ "$py" "$out/$label" {} |
    sort > "$out/$label.results"
  echo "cpython27-tests: $label: $(grep -c ' passed$' "$out/$label.results") passed of $(wc -l < "$out/$label.results")" >&2
}

compare() {
  [ $# -eq 3 ] || usage
  local orig=$1 patched=$2 out=$3 bad=0
  run "$orig" "$out" original
  run "$patched" "$out" default
  # Every loop hot at once, and the JIT loaded whatever their rate.
  run "$patched" "$out" threshold1 REDMAGIC_THRESHOLD=1 REDMAGIC_JIT_RATE=0
  run "$patched" "$out" disabled REDMAGIC_DISABLE=1
  local pass
  pass=$(awk '$2 == "passed" { print $1 }' "$out/original.results")
  echo "cpython27-tests: $(echo "$pass" | wc -w) modules pass under the original; not passing: $(awk '$2 != "passed" { printf "%s (%s) ", $1, $2 }' "$out/original.results")"
  for label in default threshold1 disabled; do
    local diff
    diff=$(join <(awk '$2 == "passed"' "$out/original.results") "$out/$label.results" | awk '$2 != $3 { printf "%s (%s) ", $1, $3 }')
    if [ -n "$diff" ]; then
      echo "cpython27-tests: $label: differs from the original: $diff"
      bad=1
    else
      echo "cpython27-tests: $label: every module the original passes passes"
    fi
  done
  return $bad
}

case "${1:-}" in
  run) shift; run "$@" ;;
  compare) shift; compare "$@" ;;
  *) usage ;;
esac
