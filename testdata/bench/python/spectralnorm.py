# spectralnorm.py N: spectral norm of the infinite matrix A, N x N part.
import math
import sys


def A(i, j):
    ij = i + j
    return 1.0 / (ij * (ij + 1) / 2 + i + 1)


def Av(x, y, n):
    for i in range(n):
        a = 0.0
        for j in range(n):
            a = a + A(i, j) * x[j]
        y[i] = a


def Atv(x, y, n):
    for i in range(n):
        a = 0.0
        for j in range(n):
            a = a + A(j, i) * x[j]
        y[i] = a


def AtAv(x, y, t, n):
    Av(x, t, n)
    Atv(t, y, n)


def main(n):
    u, v, t = [1.0] * n, [0.0] * n, [0.0] * n
    for _ in range(10):
        AtAv(u, v, t, n)
        AtAv(v, u, t, n)
    vBv, vv = 0.0, 0.0
    for i in range(n):
        ui, vi = u[i], v[i]
        vBv = vBv + ui * vi
        vv = vv + vi * vi
    print("%.9f" % math.sqrt(vBv / vv))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
