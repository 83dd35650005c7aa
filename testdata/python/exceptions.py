# Exceptions raised inside hot loops, caught in the loop or propagating
# out of it, at an iteration chosen so that the loop is already hot.

N = 8000


class Stop(Exception):
    pass


def caught_at(n, k):
    # One exception at iteration k, caught inside the loop.
    s = 0
    caught = []
    for i in range(n):
        try:
            if i == k:
                raise ValueError("bad %d" % i)
            s += i
        except ValueError as e:
            caught.append(str(e))
            s -= 1
    return s, caught


def caught_every(n, m):
    # Frequent exceptions: a ZeroDivisionError every m iterations.
    s = 0
    errs = 0
    for i in range(n):
        try:
            s += 1000 // (i % m)
        except ZeroDivisionError:
            errs += 1
        finally:
            s += 1
    return s, errs


def propagate(n, k):
    i = 0
    while i < n:
        if i == k:
            raise Stop(i)
        i += 1
    return i


def deep_propagate(n, k, depth):
    if depth == 0:
        return propagate(n, k)
    return deep_propagate(n, k, depth - 1) + 1


def lookup_errors(n):
    d = {}
    misses = 0
    for i in range(n):
        try:
            d[i % 50] += 1
        except KeyError:
            misses += 1
            d[i % 50] = 1
    return misses, sum(d.values())


def attr_errors(n):
    class A:
        pass

    a = A()
    got = 0
    for i in range(n):
        try:
            got += a.x
        except AttributeError:
            a.x = i
    return got


def chained(n, k):
    s = 0
    try:
        for i in range(n):
            try:
                if i == k:
                    {}["missing"]
                s += i
            except KeyError as e:
                raise RuntimeError("wrapped at %d" % i) from e
    except RuntimeError as e:
        return s, str(e), type(e.__cause__).__name__
    return s, None, None


def stop_iteration(n):
    it = iter(range(n))
    s = 0
    while True:
        try:
            s += next(it)
        except StopIteration:
            return s


for rep in range(6):
    k = 5000 + rep * 100
    print(rep, "caught", caught_at(N, k))
    print(rep, "every", caught_every(N, 7 + rep))
    try:
        propagate(N, k)
    except Stop as e:
        print(rep, "propagated", e.args)
    try:
        deep_propagate(N, k + 1, 20)
    except Stop as e:
        print(rep, "deep propagated", e.args)
    print(rep, "lookup", lookup_errors(N))
    print(rep, "attr", attr_errors(N))
    print(rep, "chained", chained(N, k))
    print(rep, "stopiter", stop_iteration(N + rep))

# The same at module level.
s = 0
for i in range(N):
    try:
        if i % 1000 == 999:
            raise Stop(i)
        s += i
    except Stop as e:
        s += e.args[0] * 2
print("module", s)

# An exception that leaves the program: traceback and status 1.
def boom(n):
    t = 0
    for i in range(n):
        t += i
        if i == n - 17:
            raise LookupError("escaped at %d, t=%d" % (i, t))


boom(N)
