# Exceptions raised and caught inside hot loops.
import sys

class Odd(Exception):
    pass

def check(i):
    if i % 5 == 0:
        raise Odd(i)
    return i

def run(n):
    caught = 0
    s = 0
    d = {}
    for i in xrange(n):
        try:
            s += check(i)
        except Odd as e:
            caught += 1
            s -= e.args[0] % 3
        try:
            s += d[i % 7]
        except KeyError:
            d[i % 7] = i % 11
        finally:
            s += 1
    return caught, s

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
print run(n)
