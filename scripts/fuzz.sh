#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time (default 15s each).
# Minimisation of each new interesting input is capped: with the default
# (60 s per input) a target whose inputs are whole ELF files spends its
# whole budget minimising and executes almost nothing.
#
# Go's fuzzing coordinator sometimes ends a time-bounded run with "context
# deadline exceeded" when the time runs out while a worker is busy; that is
# not a finding (a finding is reported with "Failing input written"), so
# such a run is retried once before it counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
fuzztime=${1:-15s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    for attempt in 1 2; do
      echo "fuzz: $pkg $target ($fuzztime)"
      if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=50x "$pkg" 2>&1 | tee "$log"; then
        break
      fi
      if [ "$attempt" = 2 ] || grep -q "Failing input written" "$log" || ! grep -q "context deadline exceeded" "$log"; then
        echo "fuzz: $pkg $target failed" >&2
        exit 1
      fi
      echo "fuzz: $target: the coordinator timed out without a finding; running it once more"
    done
  done
done
