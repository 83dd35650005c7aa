# fannkuch.py N: fannkuch-redux on permutations of 1..N (checksum and max flips).
import sys


def fannkuch(n):
    perm, perm1, count = [0] * n, list(range(n)), [0] * n
    maxflips, checksum, permcount = 0, 0, 0
    r = n
    while True:
        while r != 1:
            count[r - 1] = r
            r = r - 1
        for i in range(n):
            perm[i] = perm1[i]
        flips = 0
        k = perm[0]
        while k != 0:
            i, j = 0, k
            while i < j:
                perm[i], perm[j] = perm[j], perm[i]
                i = i + 1
                j = j - 1
            flips = flips + 1
            k = perm[0]
        if flips > maxflips:
            maxflips = flips
        if permcount % 2 == 0:
            checksum = checksum + flips
        else:
            checksum = checksum - flips
        # next permutation
        while True:
            if r == n:
                return checksum, maxflips
            p0 = perm1[0]
            for i in range(r):
                perm1[i] = perm1[i + 1]
            perm1[r] = p0
            count[r] = count[r] - 1
            if count[r] > 0:
                break
            r = r + 1
        permcount = permcount + 1


n = int(sys.argv[1]) if len(sys.argv) > 1 else 7
checksum, flips = fannkuch(n)
print("%d\nPfannkuchen(%d) = %d" % (checksum, n, flips))
