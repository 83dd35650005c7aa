#!/usr/bin/env python3
"""Times the loop programs of testdata/cpython27 under the annotated
CPython 2.7 (unpatched), a patched copy with the JIT off (REDMAGIC_JIT=0)
and with it on (the defaults), interleaved, and reports per program the
median wall time of each, the speed-up, and the share of loop iterations
that ran inside traces (from REDMAGIC_STATS: trace_iterations against the
back-edges the interpreter took through redmagic_backwards_branch).

  cpython27-bench.py ORIGINAL PATCHED [--runs N] [--only REGEX] [--json FILE]

Output: a Markdown table on stdout. Wall-clock times on shared machines
vary; compare ratios of interleaved runs, as here.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAMS = os.path.join(HERE, '..', 'testdata', 'cpython27')
# Sizes for one to three seconds unpatched: the JIT loads only after
# 200 ms (REDMAGIC_JIT_DELAY).
SIZES = {
    'while_loop': 8000000, 'for_range': 10000000, 'nested': 100000,
    'methods': 1000000, 'strings': 1500000, 'generators': 2500000,
    'exceptions': 1000000, 'busywait': 7500000,
}


def clean_env(extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith('REDMAGIC_') and not k.startswith('PYTHON')}
    env['PYTHONHASHSEED'] = '0'
    env.update(extra)
    return env


def run(py, prog, size, extra):
    t0 = time.monotonic()
    p = subprocess.run([py, prog, str(size)], env=clean_env(extra),
                       capture_output=True, text=True, timeout=600)
    t = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit('%s %s: exit status %d: %s' % (py, prog, p.returncode, p.stderr[-500:]))
    return t, p.stdout


def in_traces(stats_path):
    """Loop iterations inside traces, all loop iterations and traces
    compiled, from one run's REDMAGIC_STATS."""
    with open(stats_path) as f:
        st = json.load(f)
    jit = st.get('jit') or {}
    traced = jit.get('trace_iterations', 0)
    interp = sum(s.get('hits', 0) for s in st.get('sites', [])
                 if s.get('name') == 'redmagic_backwards_branch')
    return traced, traced + interp, jit.get('traces_compiled', 0)


def share(run):
    """The share of a run's loop iterations inside traces (in_traces)."""
    traced, total, _ = run
    return traced / total if total else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('original')
    ap.add_argument('patched')
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--only', default='')
    ap.add_argument('--json')
    a = ap.parse_args()
    configs = [('unpatched', a.original, {}),
               ('jit-off', a.patched, {'REDMAGIC_JIT': '0'}),
               ('jit-on', a.patched, {})]
    rows = []
    for name in sorted(SIZES):
        if not re.search(a.only, name):
            continue
        prog = os.path.join(PROGRAMS, name + '.py')
        size = SIZES[name]
        times = {c[0]: [] for c in configs}
        outs = {}
        # Every JIT-on run's share of iterations in traces: the governor
        # keeps or drops a trace by its own measurement of that run, so
        # one run's share is one draw (the median is reported).
        shares = []
        with tempfile.TemporaryDirectory() as d:
            stats = os.path.join(d, 'stats.json')
            for _ in range(a.runs):
                for label, py, extra in configs:
                    if label == 'jit-on':
                        extra = dict(extra, REDMAGIC_STATS=stats)
                    t, out = run(py, prog, size, extra)
                    times[label].append(t)
                    outs.setdefault(label, out)
                    if label == 'jit-on':
                        shares.append(in_traces(stats))
                        os.remove(stats)
        same = len(set(outs.values())) == 1
        shares.sort(key=share)
        traced, total, traces = shares[len(shares) // 2]
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({'program': name, 'size': size, 'median_s': med,
                     'same_output': same, 'traces': traces,
                     'trace_iterations': traced, 'iterations': total,
                     'share_min': share(shares[0]), 'share_max': share(shares[-1])})
        print('%s done' % name, file=sys.stderr)
    print('| program | unpatched s | JIT off s | JIT on s | JIT off / unpatched | speed-up (JIT on) | traces | iterations in traces (median run; min-max) | output |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        m = r['median_s']
        median = 100.0 * share((r['trace_iterations'], r['iterations'], 0))
        print('| %s | %.3f | %.3f | %.3f | %.3f | %.2fx | %d | %.1f%% (%d of %d; %.0f-%.0f%%) | %s |' % (
            r['program'], m['unpatched'], m['jit-off'], m['jit-on'],
            m['jit-off'] / m['unpatched'], m['unpatched'] / m['jit-on'], r['traces'],
            median, r['trace_iterations'], r['iterations'], 100 * r['share_min'], 100 * r['share_max'],
            'same' if r['same_output'] else 'DIFFERS'))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
