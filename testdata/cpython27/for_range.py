# for over range and xrange, with a branch on the loop variable.
import sys

def squares(n):
    s = 0
    for i in xrange(n):
        if i % 3 == 0:
            s += i * i % 7
        else:
            s -= i & 3
    return s

def listed(n):
    s = 0
    for i in range(n // 10):
        s ^= i * 7
    return s

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
print squares(n), listed(n)
