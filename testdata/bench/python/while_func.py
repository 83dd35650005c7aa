# while_func.py N: a `while` loop inside a function (fast locals).
import sys


def run(n):
    i = 0
    s = 0
    while i < n:
        s += i % 7
        i += 1
    return s


print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000000))
