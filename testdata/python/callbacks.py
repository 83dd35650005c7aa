# Python code called back from C inside hot loops (sort keys, map, filter,
# __del__ during gc, weakref callbacks, __eq__/__hash__ from dict lookups),
# context managers, closures, exec, and an exit status set from inside a
# hot loop with atexit handlers that loop too. Writes to stderr as well.
import atexit
import functools
import gc
import sys
import weakref

N = 6000
log = []


class Key:
    def __init__(self, v):
        self.v = v

    def __hash__(self):
        return self.v % 61

    def __eq__(self, other):
        return isinstance(other, Key) and self.v == other.v


class Finalized:
    count = 0

    def __init__(self):
        self.me = self  # a cycle: only gc frees it

    def __del__(self):
        Finalized.count += 1


class Ctx:
    def __init__(self):
        self.enters = self.exits = 0

    def __enter__(self):
        self.enters += 1
        return self

    def __exit__(self, *exc):
        self.exits += 1
        return exc[0] is KeyError  # swallow KeyError only


def make_adders(n):
    return [lambda x, k=k: x + k for k in range(n)]


def closure_counter():
    c = 0

    def bump(d):
        nonlocal c
        c += d
        return c

    return bump


for rep in range(4):
    n = N + rep
    xs = list(range(n))
    print(rep, "sorted", sorted(xs, key=lambda v: (v * 7919) % n)[:5])
    print(rep, "map", sum(map(lambda v: v % 13, xs)), len(list(filter(lambda v: v & 4, xs))))
    print(rep, "reduce", functools.reduce(lambda a, b: (a * 3 + b) % 1000003, xs))
    d = {}
    for i in range(n):
        k = Key(i % 300)
        d[k] = d.get(k, 0) + 1
    print(rep, "dict keys", len(d), d[Key(7)])
    Finalized.count = 0
    dead = []
    for i in range(n):
        Finalized()
        if i % 1000 == 999:
            gc.collect()
            r = weakref.ref(Key(i), lambda ref, i=i: dead.append(i))
    gc.collect()
    print(rep, "finalized", Finalized.count, dead)
    ctx = Ctx()
    s = 0
    for i in range(n):
        with ctx:
            if i % 500 == 0:
                raise KeyError(i)
            s += i
    print(rep, "with", ctx.enters, ctx.exits, s)
    adders = make_adders(50)
    bump = closure_counter()
    t = 0
    for i in range(n):
        t = adders[i % 50](t) % 100003
        bump(i & 3)
    print(rep, "closures", t, bump(0))
    g = {"acc": 0}
    code = compile("acc += i * 2", "<loop>", "exec")
    for i in range(n):
        g["i"] = i
        exec(code, g)
    print(rep, "exec", g["acc"], eval("acc // 3", g))
    print(rep, "stderr line", file=sys.stderr)


def at_exit():
    s = 0
    for i in range(N):
        s += i
    print("atexit", s, log)
    sys.stdout.flush()


atexit.register(at_exit)


def finish():
    for i in range(N):
        log.append(i) if i % 2000 == 0 else None
        for j in range(3):
            if i == N - 5 and j == 1:
                print("exiting at", i, j, file=sys.stderr)
                sys.exit(3)


finish()
print("not reached")
