#!/usr/bin/env python3
"""Writes the golden files of programs/ from a model of each program in
Python, independent of the VMs: NAME.out (stdout), NAME.err (stderr, only
when not empty), and checks each header's status and backedges.

Run after changing a program: python3 testdata/vms/expected.py
The models follow each program's source line by line; integer division and
modulo truncate toward zero and integers wrap at 64 bits, as in the VMs.
"""
import math
import os
import re
import struct
import sys

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


def wrap(i):
    return (i + 2**63) % 2**64 - 2**63


def idiv(a, b):
    q = abs(a) // abs(b)
    return wrap(q if (a < 0) == (b < 0) else -q)


def imod(a, b):
    return a - b * idiv(a, b) if b != -1 else 0


def fmt(v):
    if isinstance(v, int):
        return "%d" % v
    s = "%.9g" % v
    if re.fullmatch(r"-?[0-9]+", s):
        s += ".0"
    return s


class Run:
    def __init__(self):
        self.out, self.err, self.status, self.backedges = [], "", 0, 0

    def p(self, v):
        self.out.append(fmt(v))

    def fail(self, msg, pc):
        self.err, self.status = "error: %s at pc %d\n" % (msg, pc), 2


def sum_vm(r, args):
    i, s = 1, 0
    while i <= 1000:
        s += i
        i += 1
        r.backedges += 1
    r.p(s)
    r.p(i)


def nested_vm(r, args):
    total = 0
    for i in range(30):
        row = 0
        for j in range(20):
            row += i * j + 1
            if j + 1 < 20:
                r.backedges += 1
        r.p(row)
        total += row
        r.backedges += 1
    r.p(total)


def fib_vm(r, args):
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    for n in range(21):
        r.p(fib(n))
        r.backedges += 1


def ack_vm(r, args):
    sys.setrecursionlimit(10000)

    def ack(m, n):
        if m == 0:
            return n + 1
        if n == 0:
            return ack(m - 1, 1)
        return ack(m - 1, ack(m, n - 1))

    for m in range(4):
        for n in range(5):
            r.p(ack(m, n))
            r.backedges += 1
        r.backedges += 1


def loop_n_vm(r, args):
    n = int(args[0]) if args else 1000
    s = c = 0
    for i in range(n):
        s += imod(i * i, 7)
        if imod(i, 3) == 0:
            c += 1
        r.backedges += 1
    r.p(s)
    r.p(c)


def print_vm(r, args):
    n = int(args[0]) if args else 1500
    for i in range(1, n + 1):
        r.p(i * i - 3 * i)
        if i % 7 == 0:
            r.p(i / 8.0)
        r.backedges += 1


def float_vm(r, args):
    h, total = 0.001, 0.0
    for i in range(1000):
        x = (float(i) + 0.5) * h
        total = total + 4.0 / (1.0 + x * x)
        if (i + 1) % 250 == 0:
            r.p(total * h)
        r.backedges += 1
    x, k = 1.0, 0
    while True:
        x = (x + 2.0 / x) / 2.0
        k += 1
        d = x * x - 2.0
        if d * d < 1e-24:
            break
        r.backedges += 1
    r.p(x)
    r.p(k)
    for row in range(5):
        rowsum = 0
        for col in range(6):
            zr = zi = 0.0
            it = 0
            while it < 50 and zr * zr + zi * zi <= 4.0:
                nzi = 2.0 * zr * zi + (float(row) * 0.5 - 1.0)
                nzr = (zr * zr - zi * zi) + (float(col) * 0.5 - 2.0)
                zr, zi = nzr, nzi
                it += 1
                r.backedges += 1
            rowsum += it
            r.backedges += 1
        r.p(rowsum)
        r.backedges += 1
    r.p(idiv(7, 2))
    r.p(7 / 2.0)
    r.p(idiv(-7, 2))
    r.p(imod(-7, 3))
    r.p(math.fmod(7.5, 2.0))
    r.p(math.inf)
    r.p(-math.inf)
    r.p(1e20)
    r.p(0.1 + 0.2)
    r.p(2.0 * 3)
    r.p(-0.0)
    r.p(int(1.0 == 1))
    r.p(2 - 1)
    r.p(int(not 0.0))
    r.p(wrap(2**63 - 1 + 1))
    r.p(wrap(-(-(2**63))))


def divzero_vm(r, args):
    i = 0
    while True:
        if 5 - i == 0:
            return r.fail("division by zero", 7)
        r.p(idiv(100, 5 - i))
        i += 1
        r.backedges += 1


def stackoverflow_vm(r, args):
    # down(n) runs at depth n+1; a call from depth d fails when d+1 >= 1000.
    n = 0
    while True:
        if n % 250 == 0:
            r.p(n)
        if (n + 1) + 1 >= 1000:
            return r.fail("stack overflow", 24)
        n += 1


def deepframes_vm(r, args):
    # f(n)'s frame starts at 200n; its callee's would end at 200(n+1) + 202.
    n = 0
    while True:
        if n % 100 == 0:
            r.p(n)
        if 200 * (n + 1) + 202 > 65536:
            return r.fail("stack overflow", 21)
        n += 1


def badlocal_vm(r, args):
    r.p(1)
    r.p(2)
    r.fail("bad local index", 10)


def unknownop_vm(r, args):
    r.p(42)
    r.fail("unknown opcode", 3)


def badstack_vm(r, args):
    r.status = 1
    r.err = ("error: badstack.vm: func main: pc 4: reaches pc 6 with stack "
             "depth 1, other paths with 0\n")


def badsyntax_vm(r, args):
    r.status = 1
    r.err = "error: badsyntax.vm:7: push_int takes 1 operand(s)\n"


def header(path):
    h = {}
    for line in open(path):
        m = re.match(r";\s*(args|status|backedges):\s*(.*)", line)
        if m:
            h[m.group(1)] = m.group(2).split("(")[0].split()
    return h


def main():
    bad = 0
    for name in sorted(os.listdir(HERE)):
        if not name.endswith(".vm"):
            continue
        base = name[:-3]
        model = globals().get(base + "_vm")
        if model is None:
            print("%s: no model" % name)
            bad += 1
            continue
        h = header(os.path.join(HERE, name))
        r = Run()
        model(r, h.get("args", []))
        for key, got in (("status", r.status), ("backedges", r.backedges)):
            want = int((h.get(key) or ["0"])[0])
            if want != got:
                print("%s: header %s %d, model %d" % (name, key, want, got))
                bad += 1
        with open(os.path.join(HERE, base + ".out"), "w") as f:
            f.write("".join(line + "\n" for line in r.out))
        errpath = os.path.join(HERE, base + ".err")
        if r.err:
            with open(errpath, "w") as f:
                f.write(r.err)
        elif os.path.exists(errpath):
            os.remove(errpath)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
