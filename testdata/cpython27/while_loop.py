# A while loop in a function and one at module level.
import sys

def count(n):
    i = 0
    s = 0
    while i < n:
        s += i & 255
        i += 1
    return s

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
print count(n)
i = 0
t = 0
while i < n // 4:
    t = (t + i) % 1000003
    i += 1
print t
