# A thread busy-waits for a flag that only another thread sets: the GIL
# must be handed over while the waiting loop runs (inside a trace too).
import sys
import threading

def work(go, flag, n):
    go.wait()
    s = 0
    for i in xrange(n):
        s += i % 7
    flag.append(s)

def wait(flag):
    spins = 0
    while not flag:
        spins += 1
    return spins

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
go = threading.Event()
flag = []
t = threading.Thread(target=work, args=(go, flag, n))
t.start()
go.set()
wait(flag)
t.join()
print flag[0]
