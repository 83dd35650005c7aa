# closures.py N: dict- and closure-heavy code: counters captured in closures,
# kept in a dict under string keys, and records in a list.
import sys


def make_counter(k):
    c = 0

    def count(x):
        nonlocal c
        c = c + x * k
        return c
    return count


def main(n):
    t = {}
    records = [None] * 500
    for i in range(1, n + 1):
        key = "k" + str(i % 1000)
        f = t.get(key)
        if f is None:
            f = make_counter(i % 7 + 1)
            t[key] = f
        f(i % 13)
        r = records[i % 500]
        if r is not None:
            r["count"] = r["count"] + 1
            r["sum"] = r["sum"] + i % 101
        else:
            records[i % 500] = {"count": 1, "sum": i % 101}
    total = 0
    for i in range(1000):
        f = t.get("k" + str(i))
        if f is not None:
            total = total + f(0)
    rs = 0
    for r in records:
        rs = rs + r["count"] * 3 + r["sum"]
    print("%d %d %d" % (total, rs, len(records)))


main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)
