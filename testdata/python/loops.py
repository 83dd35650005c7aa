# Loops of every shape, at module level and in functions. The functions
# run several times so that the second and later calls execute quickened
# (specialised) bytecode.

N = 6000

# Module level: globals, not fast locals.
i = 0
total = 0
while i < N:
    total += i * 3 - (i >> 2)
    i += 1
print("module while", i, total)

acc = 0
for j in range(N):
    acc ^= j * 2654435761 & 0xFFFF
print("module for", j, acc)


def while_loop(n):
    i = s = 0
    while i < n:
        s += i % 11
        i += 1
    return s


def for_range(n, step):
    s = 0
    for i in range(0, n, step):
        s += i
    return s


def for_list(xs):
    s = 0
    for x in xs:
        s = (s * 31 + x) % 1000003
    return s


def for_dict(d):
    ks = vs = 0
    for k, v in d.items():
        ks += k
        vs += len(v)
    for k in d:
        ks -= k
    return ks, vs


def for_str(text):
    counts = {}
    for ch in text:
        counts[ch] = counts.get(ch, 0) + 1
    return sorted(counts.items())


def squares(n):
    for i in range(n):
        yield i * i


def for_gen(n):
    s = 0
    for v in squares(n):
        s += v & 0xFF
    return s


def nested(n, m):
    s = 0
    for a in range(n):
        b = 0
        while b < m:
            s += a * b
            b += 1
    return s


def break_continue(n):
    s = 0
    skipped = 0
    for i in range(n * 2):
        if i % 7 == 0:
            skipped += 1
            continue
        if i >= n:
            break
        s += i
    # A break out of a while loop, taken at a data-dependent point.
    k = 0
    while True:
        k += 3
        if k * k > n * 97:
            break
    return s, skipped, k


def for_else(n, stop):
    for i in range(n):
        if i == stop:
            res = "broke at %d" % i
            break
    else:
        res = "ran to the end"
    return res


data = list(range(N))
d = {k: "x" * (k % 13) for k in range(N)}
text = "the quick brown fox jumps over the lazy dog " * 150

for call in range(10):
    n = N + call * 37
    print(call, "while", while_loop(n))
    print(call, "range", for_range(n, 1 + call % 3))
    print(call, "list", for_list(data[call:]))
    print(call, "dict", for_dict(d))
    print(call, "str", for_str(text[call:])[:4])
    print(call, "gen", for_gen(n))
    print(call, "nested", nested(60 + call, 100))
    print(call, "break", break_continue(n))
    print(call, "else", for_else(n, n - call * 1000), for_else(n, -1))

# Comprehensions are loops in their own code objects.
print("listcomp", sum([x * x for x in range(N) if x & 1]))
print("dictcomp", len({x: x for x in range(N)}), sum({x % 97 for x in range(N)}))
print("genexp", sum(x for x in range(N) if x % 3 == 0))
