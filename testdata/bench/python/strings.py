# strings.py N: string building: format, repeat, join and search.
import sys


def main(n):
    parts = []
    for i in range(1, n + 1):
        parts.append("%d:%s" % (i, "x" * (i % 5)))
    s = ",".join(parts)
    sevens = s.count("7")
    acc = ""
    for i in range(1, n % 1000 + 200 + 1):
        acc = acc + chr(97 + i % 26)
    up = acc.upper()
    print("%d %d %d %s" % (len(s), sevens, len(acc), up[:30]))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)
