# Values whose types change in the middle of a hot loop: int -> float ->
# big int (beyond 64 bits) -> str, and containers, callables and classes
# that change under a loop that has been specialised for the old type.

N = 8000


def accumulate(n):
    x = 0
    kinds = []
    for i in range(n):
        if i == 2000:
            x = float(x)
        elif i == 4000:
            x = int(x) * 2**62
        elif i == 6000:
            x = str(x)[:20]
        if isinstance(x, str):
            x = x[-10:] + str(i % 10)
        else:
            x = x + i
        t = type(x).__name__
        if not kinds or kinds[-1] != t:
            kinds.append(t)
    return kinds, x


def overflow(n):
    # Multiplication that leaves the small-int range part-way.
    x = 1
    steps = []
    for i in range(n):
        x = x * 3 + 1 if x < 10**40 else x // 7
        if i % 1000 == 0:
            steps.append(x.bit_length())
    return steps


def mixed_compare(n):
    vals = [1, 2.5, 3, 4.0, True, 10**20, -7]
    s = 0
    for i in range(n):
        a = vals[i % 7]
        b = vals[(i * 3) % 7]
        if a < b:
            s += 1
        elif a == b:
            s += 10
    return s


def poly_add(items, n):
    out = None
    for i in range(n):
        v = items[i % len(items)]
        out = v if out is None or type(out) != type(v) else out + v
    return out


class P:
    def __init__(self, v):
        self.v = v

    def get(self):
        return self.v


class Q(P):
    def get(self):
        return -self.v


def dispatch(n):
    objs = [P(i) for i in range(10)]
    s = 0
    for i in range(n):
        if i == 5000:
            objs = [Q(i) for i in range(10)]
        if i == 6500:
            Q.get = lambda self: self.v * 100
        s += objs[i % 10].get()
    return s


def globals_change(n):
    global G
    s = 0
    for i in range(n):
        if i == 4000:
            G = 2.5
        if i == 6000:
            G = "s"
        s += G if not isinstance(G, str) else len(G)
    return s


def callable_change(n):
    f = abs
    s = 0
    for i in range(n):
        if i == 3000:
            f = str
        elif i == 5000:
            f = lambda v: v * 2
        r = f(-i)
        s += r if isinstance(r, int) else len(r)
    return s


for rep in range(4):
    G = 1
    print(rep, "accumulate", accumulate(N))
    print(rep, "overflow", overflow(N))
    print(rep, "compare", mixed_compare(N))
    print(rep, "poly", poly_add([1, 2, 3], N), poly_add([1.5, 2.25], N), poly_add(["ab", "c"], 5001)[:12])
    print(rep, "dispatch", dispatch(N))
    print(rep, "globals", globals_change(N))
    print(rep, "callable", callable_change(N))
    Q.get = lambda self: -self.v

# Module level: the loop variable itself changes type.
x = 0
for i in range(N):
    x += i
    if i == 5000:
        x = x * 1.5
    if i == 7000:
        x = int(x) ** 3
print("module", x % 10**30, type(x).__name__)
