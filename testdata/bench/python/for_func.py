# for_func.py N: a `for` loop inside a function (fast locals).
import sys


def run(n):
    s = 0
    for i in range(n):
        s += i % 7
    return s


print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000000))
