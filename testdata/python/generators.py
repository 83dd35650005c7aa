# Generators and coroutines with yield inside hot loops: plain iteration,
# send, throw, close, yield from, and async def driven by hand (no event
# loop, no threads).
import types

N = 6000


def counter(n):
    i = 0
    while i < n:
        yield i
        i += 1


def accumulator():
    total = 0
    while True:
        v = yield total
        if v is None:
            break
        total += v
    return total


def inner(n):
    for i in range(n):
        got = yield i
        if got:
            yield -got
    return "inner done %d" % n


def outer(n):
    r1 = yield from inner(n)
    r2 = yield from inner(n // 2)
    return r1, r2


def with_cleanup(n, log):
    try:
        for i in range(n):
            try:
                yield i
            except KeyError:
                log.append("KeyError at %d" % i)
    finally:
        log.append("finally")


def pipeline(n):
    evens = (x for x in counter(n) if x % 2 == 0)
    doubled = (x * 2 for x in evens)
    return sum(doubled)


class Sleep:
    # An awaitable that suspends the coroutine once.
    def __init__(self, v):
        self.v = v

    def __await__(self):
        got = yield self.v
        return got


@types.coroutine
def old_style(v):
    got = yield v
    return got * 2


async def add_up(n):
    s = 0
    for i in range(n):
        s += await Sleep(i)
        if i % 1000 == 0:
            s += await old_style(i)
    return s


async def nested_async(n):
    a = await add_up(n)
    b = await add_up(n // 3)
    return a - b


async def agen(n):
    for i in range(n):
        yield i * 3


async def consume_agen(n):
    s = 0
    async for v in agen(n):
        s += v
        await Sleep(0)
    return s


def drive(coro):
    # A minimal scheduler: resume with what was yielded, plus one.
    steps = 0
    value = None
    while True:
        try:
            y = coro.send(value)
        except StopIteration as e:
            return e.value, steps
        steps += 1
        value = (y or 0) + 1


for rep in range(5):
    n = N + rep * 11
    print(rep, "iterate", sum(counter(n)))
    acc = accumulator()
    next(acc)
    last = 0
    for i in range(n):
        last = acc.send(i % 17)
    try:
        acc.send(None)
    except StopIteration as e:
        print(rep, "send", last, e.value)
    g = outer(n)
    out = [next(g)]
    k = 0
    try:
        while True:
            k += 1
            out.append(g.send(k if k % 500 == 0 else None))
    except StopIteration as e:
        print(rep, "yield from", len(out), sum(out), e.value)
    log = []
    g = with_cleanup(n, log)
    s = 0
    for v in g:
        s += v
        if v % 1500 == 1499:
            s += g.throw(KeyError("x"))
        if v == n - 100:
            g.close()
    print(rep, "throw/close", s, log)
    print(rep, "pipeline", pipeline(n))
    print(rep, "async", drive(add_up(n)))
    print(rep, "async nested", drive(nested_async(n)))
    print(rep, "async gen", drive(consume_agen(n)))

# Generators resumed at module level, interleaved.
a, b = counter(N), counter(N * 2)
s = 0
for x in a:
    s += x - next(b)
    s += next(b)
print("interleaved", s)
