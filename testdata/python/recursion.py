# Deep recursion that hits the recursion limit, caught and reported, from
# inside hot loops, through Python-to-Python calls and through C calls.
import sys

sys.setrecursionlimit(1000)


def down(n):
    return down(n + 1) + 1


def depth_reached():
    reached = [0]

    def f(n):
        reached[0] = n
        f(n + 1)

    try:
        f(0)
    except RecursionError as e:
        return reached[0], str(e)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Node:
    def __init__(self, nxt):
        self.nxt = nxt

    def __repr__(self):
        # repr() recursion goes through C code.
        return "Node(%r)" % (self.nxt,)


def loop_with_recursion(n):
    errors = 0
    total = 0
    for i in range(n):
        total += fib(i % 12)
        if i % 1000 == 999:
            try:
                down(0)
            except RecursionError:
                errors += 1
    return total, errors


def ackermann(m, n):
    while m:
        if n == 0:
            n = 1
        else:
            n = ackermann(m, n - 1)
        m -= 1
    return n + 1


for rep in range(4):
    print(rep, "depth", depth_reached())
    print(rep, "loop", loop_with_recursion(5000 + rep))
    print(rep, "ackermann", ackermann(2, 300 + rep))
    chain = None
    for i in range(5000):
        chain = Node(chain)
    try:
        repr(chain)
    except RecursionError as e:
        print(rep, "repr", type(e).__name__, e)
    # The limit recovers after the error: the same depth works again.
    print(rep, "after", fib(15))

sys.setrecursionlimit(200)
try:
    down(0)
except RecursionError as e:
    print("limit 200", e)
