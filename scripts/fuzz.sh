#!/usr/bin/env bash
# Runs every fuzz target of the module for a bounded time (default 15s each).
# Minimisation of each new interesting input is capped: with the default
# (60 s per input) a target whose inputs are whole ELF files spends its
# whole budget minimising and executes almost nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
fuzztime=${1:-15s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "fuzz: $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=50x "$pkg"
  done
done
