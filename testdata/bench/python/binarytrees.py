# binarytrees.py N: allocate and walk complete binary trees (GC heavy).
import sys


def bottom_up(depth):
    if depth == 0:
        return (None, None)
    depth -= 1
    return (bottom_up(depth), bottom_up(depth))


def check(tree):
    left, right = tree
    if left is not None:
        return 1 + check(left) + check(right)
    return 1


def main(n):
    mindepth = 4
    maxdepth = n
    if mindepth + 2 > n:
        maxdepth = mindepth + 2
    stretch = maxdepth + 1
    print("stretch tree of depth %d\t check: %d" % (stretch, check(bottom_up(stretch))))
    long_lived = bottom_up(maxdepth)
    for depth in range(mindepth, maxdepth + 1, 2):
        iters = 2 ** (maxdepth - depth + mindepth)
        c = 0
        for _ in range(iters):
            c += check(bottom_up(depth))
        print("%d\t trees of depth %d\t check: %d" % (iters, depth, c))
    print("long lived tree of depth %d\t check: %d" % (maxdepth, check(long_lived)))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
