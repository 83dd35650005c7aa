# Attribute, dict, list and string work in hot loops: instance and class
# attributes, __slots__, properties, descriptors, and containers that grow,
# shrink and are mutated while iterated over.

N = 7000


class Point:
    scale = 2

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 0
        self.b = 1


class Prop:
    def __init__(self):
        self._v = 0

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, value):
        self._v = value % 1009


class Dyn:
    def __getattr__(self, name):
        return len(name)


def attributes(n):
    p = Point(1, -2)
    s = Slotted()
    q = Prop()
    d = Dyn()
    total = 0
    for i in range(n):
        p.x += 1
        p.y -= p.scale
        s.a, s.b = s.b, (s.a + s.b) % 10007
        q.v = q.v + i
        total += p.norm1() + d.abc
        if i == n // 2:
            # A new attribute changes the instance's layout mid-loop.
            p.z = 5
            Point.scale = 3
    Point.scale = 2
    return p.x, p.y, s.a, s.b, q.v, total


def dict_heavy(n):
    d = {}
    for i in range(n):
        d[i] = i * i
        if i % 3 == 0:
            del d[i // 2]
        d.setdefault(i % 100, 0)
    counts = {}
    for k, v in d.items():
        counts[v % 7] = counts.get(v % 7, 0) + 1
    keys = [k for k in d if k % 500 == 0]
    d2 = dict.fromkeys(range(n // 2), 1)
    d2.update({k: 2 for k in range(0, n, 3)})
    return len(d), sorted(counts.items()), keys[:5], sum(d2.values())


def list_heavy(n):
    xs = []
    for i in range(n):
        xs.append(i ^ 0x55)
        if i % 10 == 0:
            xs.insert(0, -i)
        if i % 7 == 0 and xs:
            xs.pop()
    xs.sort()
    ys = xs[::3]
    zs = [a - b for a, b in zip(xs, reversed(xs))]
    i = 0
    while i < len(ys):
        if ys[i] % 2:
            del ys[i]
        else:
            i += 1
    return len(xs), sum(xs), len(ys), sum(zs), xs[:3], ys[-3:]


def strings(n):
    parts = []
    s = ""
    for i in range(n):
        s += chr(97 + i % 26)
        if i % 100 == 99:
            parts.append(s.upper())
            s = ""
    joined = "|".join(parts)
    words = joined.split("|")
    out = []
    for w in words:
        out.append(w[::-1].replace("A", "@").lower()[:5])
    f = "".join("%d:%s;" % (i, out[i % len(out)]) for i in range(0, n, 700))
    b = bytearray()
    for i in range(n):
        b.append(i % 256)
    return len(joined), out[:3], f, sum(b), f"{n:08x}{len(words):>5}"


def tuples_sets(n):
    seen = set()
    pairs = []
    for i in range(n):
        t = (i % 37, i % 41)
        if t in seen:
            pairs.append(t)
        seen.add(t)
    return len(seen), len(pairs), pairs[:3], sorted(seen)[-2:]


for rep in range(5):
    n = N + rep
    print(rep, "attrs", attributes(n))
    print(rep, "dict", dict_heavy(n))
    print(rep, "list", list_heavy(n))
    print(rep, "str", strings(n))
    print(rep, "tuples", tuples_sets(n))

# Module-level attribute and subscription loops.
p = Point(0, 0)
grid = [[0] * 50 for _ in range(50)]
for i in range(N):
    p.x = p.x + i % 5
    grid[i % 50][(i * 7) % 50] += i
print("module", p.x, sum(map(sum, grid)), grid[3][:4])
