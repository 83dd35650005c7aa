# Generators consumed by for loops, sum() and list(): each next() runs a
# generator frame.
import sys

def gen(n):
    i = 0
    while i < n:
        yield i * 3 % 17
        i += 1

def evens(it):
    for v in it:
        if v % 2 == 0:
            yield v

def run(n):
    s = 0
    for v in gen(n):
        s += v
    t = sum(evens(gen(n)))
    u = len(list(x for x in xrange(n // 2) if x & 4))
    return s, t, u

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
print run(n)
