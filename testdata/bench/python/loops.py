# loops.py N: integer and float arithmetic in plain counted loops, inside a
# function (fast locals), as loops.lua does.
import sys


def main(n):
    s = 0
    for i in range(1, n + 1):
        s = (s + i * i % 7 + i % 3) % 1000000007
    x = 0.0
    for i in range(1, n + 1):
        x = x + 1.0 / i
    j, c = 0, 0
    while j < n:
        if j % 3 == 0:
            c = c + 1
        j = j + 1
    print("%d %.9f %d" % (s, x, c))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000000)
