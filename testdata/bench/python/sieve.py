# sieve.py N: sieve of Eratosthenes up to N, run 4 times.
import sys


def main(n):
    count, total = 0, 0
    for _ in range(4):
        composite = [False] * (n + 1)
        count, total = 0, 0
        for i in range(2, n + 1):
            if not composite[i]:
                count += 1
                total = (total + i) % 1000000007
                for k in range(i * i, n + 1, i):
                    composite[k] = True
    print("primes<=%d: %d sum %d" % (n, count, total))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)
