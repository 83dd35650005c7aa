"""A small stand-in for pyperf, written for redmagic-patch's benchmark
harness (scripts/bench), so that pyperformance's bm_*/run_benchmark.py
files run unchanged without pyperf installed.

It is not pyperf: it spawns no worker processes, calibrates nothing and
keeps no timings. The harness measures the whole process from outside and
checks its standard output, so this module only has to run each benchmark
a known number of times and say so, deterministically.

The harness puts this directory on PYTHONPATH (with
PYTHONDONTWRITEBYTECODE=1, so no __pycache__ lands in the repository) for
its pyperf/* programs only.

Run count. The harness runs `python3.11 run_benchmark.py SIZE`. A Runner
takes a trailing integer argument off the command line (SIZE, at least 1)
before argparse sees it; the benchmarks' own positional arguments (such as
scimark's or logging's benchmark name) are never integers. Without one,
each benchmark runs once. sys.argv itself is left alone.

What "run SIZE times" means per entry point:

- bench_func(name, func, *args): func(*args) is called SIZE times.
- bench_time_func(name, func, *args): func(SIZE, *args) is called once;
  func runs SIZE loops and returns the seconds they took, which must be a
  non-negative number (and is otherwise ignored).
- bench_async_func(name, func, *args): asyncio.run(func(*args)) SIZE times.

inner_loops and Runner's tuning arguments (processes, values, warmups,
loops, min_time, ...) are accepted and ignored: they only shape pyperf's
statistics.

Output: one line per benchmark, `NAME: SIZE runs ok`, after it has run,
and nothing else. Never a time, so the harness's expected files hold. A
benchmark's own checks (asserts, raise on a wrong answer) run as written;
a failure is an exception and a non-zero exit, like any Python error.
"""

import argparse
import numbers
import sys
import time

__all__ = ["Runner", "perf_counter"]

# The benchmarks time their own loops with pyperf.perf_counter.
perf_counter = time.perf_counter


def _split_runs(argv):
    """Return (runs, argv without a trailing run count)."""
    if argv and argv[-1].isdigit():
        runs = int(argv[-1])
        if runs < 1:
            raise SystemExit("pyperf stand-in: the run count must be at least 1, got %s" % argv[-1])
        return runs, argv[:-1]
    return 1, list(argv)


class Runner:
    """Runs benchmarks a fixed number of times; see the module docstring."""

    def __init__(self, *, add_cmdline_args=None, metadata=None, program_args=None,
                 show_name=True, _argparser=None, **tuning):
        # add_cmdline_args and program_args are how pyperf passes options to
        # its worker processes; there are none here.
        self.metadata = dict(metadata or {})
        self.runs, self._argv = _split_runs(sys.argv[1:])
        self.argparser = _argparser or argparse.ArgumentParser()
        self.args = None
        self._names = set()

    def parse_args(self, args=None):
        """Parses the benchmark's own arguments (once) and returns them."""
        if self.args is None:
            self.args = self.argparser.parse_args(self._argv if args is None else args)
        return self.args

    def _start(self, name):
        if self.args is None:
            self.parse_args()
        if name in self._names:
            raise ValueError("duplicate benchmark name: %r" % name)
        self._names.add(name)

    def _done(self, name):
        print("%s: %d runs ok" % (name, self.runs), flush=True)

    def bench_func(self, name, func, *args, inner_loops=None, metadata=None):
        self._start(name)
        for _ in range(self.runs):
            func(*args)
        self._done(name)

    def bench_time_func(self, name, time_func, *args, inner_loops=None, metadata=None):
        self._start(name)
        dt = time_func(self.runs, *args)
        if not isinstance(dt, numbers.Real) or dt < 0:
            raise TypeError("%s: the time function returned %r, not seconds" % (name, dt))
        self._done(name)

    def bench_async_func(self, name, func, *args, inner_loops=None, metadata=None):
        # Imported here: asyncio costs more start-up than most benchmarks'
        # small sizes take to run, and no bm_* file here needs it.
        import asyncio

        self._start(name)
        for _ in range(self.runs):
            asyncio.run(func(*args))
        self._done(name)
