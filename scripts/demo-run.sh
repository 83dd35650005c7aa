#!/usr/bin/env bash
# The demo proper (called by `make demo` after the build): recover the
# control flow of the bundled test interpreters and of the real ones on
# this machine, and show what was found. Outputs land in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
tool=bin/redmagic-patch
out=out/demo
mkdir -p "$out"

# The eval loop's address comes from the unstripped build; the CFG is
# recovered from the stripped copy.
for vm in switchvm gotovm annotvm; do
  eval_addr=0x$(nm "testdata/build/$vm" | awk '$3=="vm_eval"{print $1}')
  bin=testdata/build/$vm.stripped
  echo "== $vm (stripped): whole binary"
  "$tool" cfg "$bin" --stats
  "$tool" cfg "$bin" --format json -o "$out/$vm.json"
  "$tool" cfg "$bin" --func "$eval_addr" --format dot -o "$out/$vm-eval.dot"
  if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$out/$vm-eval.dot" -o "$out/$vm-eval.svg"
  fi
  echo "-- its eval loop (vm_eval at $eval_addr): dispatch"
  "$tool" cfg "$bin" --func "$eval_addr" --format text | grep -E "^function|^  part|indirect jump"
  echo
done

echo "== /usr/bin/python3.11: whole binary, then the dispatch of _PyEval_EvalFrameDefault"
"$tool" cfg /usr/bin/python3.11 --stats
"$tool" cfg /usr/bin/python3.11 --func _PyEval_EvalFrameDefault --format text -o "$out/python3.11-eval.txt"
grep -E "^function|^  part" "$out/python3.11-eval.txt"
echo "  $(grep -c 'indirect jump .*table 0x' "$out/python3.11-eval.txt") indirect jumps resolved, e.g.:"
grep -m 3 "indirect jump" "$out/python3.11-eval.txt"
echo

echo "== /usr/bin/lua5.4: whole binary, then its largest function (luaV_execute)"
"$tool" cfg /usr/bin/lua5.4 --stats
"$tool" cfg /usr/bin/lua5.4 --format text -o "$out/lua5.4.txt"
largest="" size=0
while read -r _ _ range _; do # "function NAME [0xSTART,0xEND) ..."
  range=${range#[}; range=${range%)}
  start=${range%,*} end=${range#*,}
  if (( end - start > size )); then size=$((end - start)) largest=$start; fi
done < <(grep '^function' "$out/lua5.4.txt" | sed 's/^function (unnamed)/function -/')
"$tool" cfg /usr/bin/lua5.4 --func "$largest" --format text | grep -E "^function|indirect jump"
echo

echo "== patching: the test VMs, python3.11 and lua5.4 into $out/patched/"
"$tool" batch --out-dir "$out/patched" testdata/build/annotvm.stripped /usr/bin/python3.11 /usr/bin/lua5.4
"$tool" testdata/build/gotovm.stripped --profile testdata/vms/vm-profile.json -o "$out/patched/gotovm" >/dev/null
"$tool" inspect "$out/patched/python3.11"
echo

# hits PROGRAM ARGS...: run a patched program and show its output and the
# back-edge hits the runtime counted.
hits() {
  local stats="$out/patched/stats.json"
  REDMAGIC_STATS="$stats" "$@"
  /usr/bin/python3.11 - "$stats" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
busy = [f"{s['name']} {s['hits']}" for s in d["sites"] if s["hits"]]
top = d["hot_loops"][0] if d["hot_loops"] else None
print(f"   runtime: {d['site_hits']} site hits ({', '.join(busy)})")
if top:
    print(f"   hottest loop: site {top['site']} id {top['id']:#x}, {top['hits']} hits; "
          f"{d['slow_path_calls']} loop(s) crossed the hot threshold")
j = d.get("jit")
if j:
    print(f"   JIT: {j['traces_compiled']} trace(s), {j['trace_iterations']} back-edges inside traces, "
          f"{j['side_exits']} exits, {j['code_bytes']} bytes of code, aborts {j['aborts'] or 'none'}")
PY
}

# timed NAME CMD...: wall time of one run, output discarded.
timed() {
  local name=$1; shift
  local t0 t1
  t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
  printf '   %-28s %d ms\n' "$name" $(( (t1 - t0) / 1000000 ))
}
echo "-- gotovm loop_n.vm 100000 (100000 back-edges)"
hits "$out/patched/gotovm" testdata/vms/programs/loop_n.vm 100000
echo "-- annotvm fib.vm"
hits "$out/patched/annotvm.stripped" testdata/vms/programs/fib.vm
echo "-- the tracing JIT: annotvm count.vm 20000000, original and patched"
hits "$out/patched/annotvm.stripped" testdata/bench/vm/count.vm 20000000
timed "original annotvm" testdata/build/annotvm.stripped testdata/bench/vm/count.vm 20000000
timed "patched, JIT on" "$out/patched/annotvm.stripped" testdata/bench/vm/count.vm 20000000
timed "patched, REDMAGIC_JIT=0" env REDMAGIC_JIT=0 "$out/patched/annotvm.stripped" testdata/bench/vm/count.vm 20000000
REDMAGIC_LOG="$out/patched/annotvm-traces.txt" "$out/patched/annotvm.stripped" testdata/bench/vm/count.vm 100000 >/dev/null
echo "   each trace's disassembly, beside the original addresses: $out/patched/annotvm-traces.txt"

echo "-- python3.11: while i < 10**6"
hits "$out/patched/python3.11" -c 'i = 0
while i < 10**6: i += 1
print(i)'
echo "-- lua5.4: for i = 1, 10^6"
hits "$out/patched/lua5.4" -e 'local s = 0 for i = 1, 1e6 do s = s + i end print(s)'
echo "-- the same python3.11 with REDMAGIC_DISABLE=1 runs the original code:"
REDMAGIC_DISABLE=1 "$out/patched/python3.11" -c 'print("hello from the original code path")'
echo
echo "demo: outputs in $out/ (CFG dumps, DOT and SVG of each eval loop, patched interpreters)"
