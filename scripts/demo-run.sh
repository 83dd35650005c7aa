#!/usr/bin/env bash
# The demo proper (called by `make demo` after the build): recover the
# control flow of the bundled test interpreters and of the real ones on
# this machine, and show what was found.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
tool=bin/redmagic-patch
out=out/demo
mkdir -p "$out"

show() { # show BINARY FUNC NAME
  local bin=$1 fn=$2 name=$3
  echo "== $name: $bin"
  "$tool" cfg "$bin" --stats
  "$tool" cfg "$bin" --func "$fn" --format json -o "$out/$name.json"
  "$tool" cfg "$bin" --func "$fn" --format dot -o "$out/$name.dot"
  if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$out/$name.dot" -o "$out/$name.svg"
  fi
  "$tool" cfg "$bin" --func "$fn" --format text | head -n 25
  echo "   ... full CFG of $fn: $out/$name.{json,dot,svg}"
  echo
}

show testdata/build/switchvm.stripped 0x$(nm testdata/build/switchvm | awk '$3=="vm_run"{print $1}') switchvm
show testdata/build/gotovm.stripped 0x$(nm testdata/build/gotovm | awk '$3=="vm_run"{print $1}') gotovm
show testdata/build/annotvm.stripped 0x$(nm testdata/build/annotvm | awk '$3=="vm_run"{print $1}') annotvm
show /usr/bin/python3.11 _PyEval_EvalFrameDefault python3.11
echo "== lua5.4: the dispatch function is the largest one"
"$tool" cfg /usr/bin/lua5.4 --stats
