# Method calls on objects inside a loop (a nested frame per call).
import sys

class Counter(object):
    def __init__(self):
        self.n = 0
        self.odd = 0

    def add(self, v):
        self.n += v
        if v & 1:
            self.odd += 1
        return self.n

class Point(object):
    __slots__ = ('x', 'y')

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm1(self):
        return abs(self.x) + abs(self.y)

def run(n):
    c = Counter()
    s = 0
    for i in xrange(n):
        c.add(i % 13)
        s += Point(i, -i).norm1() % 11
    return c.n, c.odd, s

n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
print run(n)
