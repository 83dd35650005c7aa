# Nested loops: the inner loop is hot first, then the outer one.
import sys

def grid(n):
    total = 0
    for i in xrange(n):
        j = 0
        while j < 50:
            total += (i ^ j) & 15
            j += 1
    return total

n = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
print grid(n)
