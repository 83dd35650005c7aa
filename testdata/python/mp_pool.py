# multiprocessing with the fork start method: a Pool whose workers are
# forked from a process that has already traced the same loops, and a
# Process talking back through a Queue.
import multiprocessing as mp

N = 6000


def work(n):
    s = 0
    i = 0
    while i < n:
        s += (i * 7) % 13
        i += 1
    return n, s


def strings(k):
    out = []
    for i in range(N):
        if i % 1000 == k:
            out.append(str(i))
    return "-".join(out)


def producer(q, n):
    for i in range(0, n, 500):
        q.put(sum(range(i, i + 500)))
    q.put(None)


if __name__ == "__main__":
    # Make the loops hot in the parent before the workers are forked.
    print("parent", [work(N + k) for k in range(3)])
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        print("map", pool.map(work, [N, N * 2, N + 1, N + 2, N * 3]))
        print("imap", list(pool.imap(strings, range(5))))
        r = pool.apply_async(work, (N * 4,))
        print("apply", r.get(timeout=60))
    q = ctx.Queue()
    p = ctx.Process(target=producer, args=(q, N))
    p.start()
    got = []
    while True:
        v = q.get(timeout=60)
        if v is None:
            break
        got.append(v)
    p.join()
    print("queue", len(got), sum(got), p.exitcode)
