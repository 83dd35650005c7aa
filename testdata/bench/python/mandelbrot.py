# mandelbrot.py N: counts the points of an N x N grid over [-1.5,0.5]x[-1,1]
# that stay bounded for 50 iterations, and a position checksum.
import sys


def main(n):
    inside, check = 0, 0
    for y in range(n):
        ci = 2.0 * y / n - 1.0
        for x in range(n):
            cr = 2.0 * x / n - 1.5
            zr, zi, zr2, zi2 = 0.0, 0.0, 0.0, 0.0
            escaped = False
            for _ in range(50):
                zi = 2.0 * zr * zi + ci
                zr = zr2 - zi2 + cr
                zr2 = zr * zr
                zi2 = zi * zi
                if zr2 + zi2 > 4.0:
                    escaped = True
                    break
            if not escaped:
                inside += 1
                check = (check + x * 31 + y) % 1000003
    print("%d %d" % (inside, check))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
