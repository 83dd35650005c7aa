# Four threads running hot loops at once, with the GIL handed off every
# microsecond: shared counters under a Lock, and lock-free work whose
# per-thread results do not depend on the interleaving.
import sys
import threading

sys.setswitchinterval(1e-6)
N = 20000
lock = threading.Lock()
shared = {"count": 0, "sum": 0}


def locked_worker(tid):
    for i in range(N):
        with lock:
            shared["count"] += 1
            shared["sum"] += i * tid


results = [None] * 4


def own_worker(tid):
    s = 0
    i = 0
    xs = []
    while i < N:
        s = (s * 33 + i + tid) % 1000000007
        if i % 997 == 0:
            xs.append(s & 0xFF)
        i += 1
    results[tid] = (s, sum(xs), len(xs))


class Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def bump(self, k):
        with self.lock:
            self.n += k


counter = Counter()


def method_worker(tid):
    for i in range(N // 2):
        counter.bump(tid + 1)
        if i % 1000 == 0:
            # A Condition-free hand-off: give other threads a turn.
            threading.Event().wait(0)


def gen_worker(tid, out):
    def g():
        for i in range(N):
            yield (i ^ tid) * (tid + 1)

    out[tid] = sum(g())


for rep in range(2):
    shared["count"] = shared["sum"] = 0
    ts = [threading.Thread(target=locked_worker, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(rep, "locked", shared["count"], shared["sum"])

    ts = [threading.Thread(target=own_worker, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(rep, "own", results)

    counter.n = 0
    ts = [threading.Thread(target=method_worker, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(rep, "methods", counter.n)

    out = [None] * 4
    ts = [threading.Thread(target=gen_worker, args=(t, out)) for t in range(4)]
    for t in ts:
        t.start()
    # The main thread runs a hot loop of its own meanwhile.
    m = 0
    for i in range(N):
        m += i & 7
    for t in ts:
        t.join()
    print(rep, "gens", out, m)
