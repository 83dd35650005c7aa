# os.fork in the middle of a hot loop: the child and the parent both
# continue the same loop (already traced in the parent) and print; the
# parent waits for the child before printing, so the order is fixed.
import os
import sys
import threading

N = 10000


def work(n, fork_at, tag):
    s = 0
    pid = None
    role = tag
    for i in range(n):
        s += (i * i) % 101
        if i == fork_at:
            sys.stdout.flush()
            pid = os.fork()
            role = tag + (".child" if pid == 0 else ".parent")
            if pid != 0:
                # The parent waits first: the child's lines come first.
                _, status = os.waitpid(pid, 0)
                print(role, "child exit status", os.waitstatus_to_exitcode(status))
    return role, pid, s


def child_exit(role, pid, code, how):
    if pid == 0:
        print(role, "done")
        sys.stdout.flush()
        if how == "_exit":
            os._exit(code)
        sys.exit(code)


for rep, (fork_at, how) in enumerate([(6000, "exit"), (9000, "_exit"), (7777, "exit")]):
    role, pid, s = work(N + rep, fork_at, "r%d" % rep)
    print(role, "sum", s)
    child_exit(role, pid, rep + 3, how)

# A while loop at module level forks, and both halves keep looping.
i = 0
t = 0
pid = None
while i < N:
    t += i % 13
    if i == 5000:
        sys.stdout.flush()
        pid = os.fork()
        if pid:
            os.waitpid(pid, 0)
    i += 1
print("module", "child" if pid == 0 else "parent", i, t)
sys.stdout.flush()
if pid == 0:
    os._exit(0)

# Nested forks: a child forks a grandchild mid-loop.
def nested(n):
    s = 0
    level = 0
    for i in range(n):
        s += i & 15
        if i in (3000, 6000):
            sys.stdout.flush()
            p = os.fork()
            if p:
                os.waitpid(p, 0)
                break
            level += 1
    print("nested level", level, "s", s)
    sys.stdout.flush()
    if level:
        os._exit(0)


nested(N)


# Forks at the iterations where a loop gets hot and is being recorded
# (for thresholds 1, 7 and the default 1000): the child leaves at once.
def early(n):
    statuses = []
    i = 0
    while i < n:
        if i in (1, 2, 3, 5, 7, 8, 9, 999, 1000, 1001, 1002):
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                os._exit(i % 50)
            statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        i += 1
    return statuses


print("early", early(N))
print("early again", early(N))


# A fork while two other threads run hot loops: the child has only the
# forking thread and finishes its own loop; the parent's threads go on.
def spin(out, tid):
    s = 0
    for i in range(N * 3):
        s += ((i ^ tid) & 31) * (tid + 1)
    out[tid] = s


out = [None, None]
ts = [threading.Thread(target=spin, args=(out, t)) for t in range(2)]
for t in ts:
    t.start()
s = 0
for i in range(N):
    s += i % 9
    if i == 4000:
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            for j in range(N):
                s += j % 5
            print("threads child", s)
            sys.stdout.flush()
            os._exit(0)
        os.waitpid(pid, 0)
for t in ts:
    t.join()
print("threads parent", s, out)
