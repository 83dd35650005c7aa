# Signals handled while hot loops run: SIGALRM from an interval timer,
# SIGINT and SIGUSR1 sent to the process itself with os.kill at a chosen
# iteration. Python runs handlers at the next eval-breaker check, so the
# iteration a handler observes is deterministic.
import os
import signal
import time

N = 8000
fired = []


def on_alarm(signum, frame):
    fired.append(signum)


def spin_until(count, limit=5.0):
    # Bounded by wall time so that a missed signal reports instead of
    # hanging; the original never comes near the bound.
    start = time.monotonic()
    i = 0
    while len(fired) < count:
        i += 1
        if i % 200000 == 0 and time.monotonic() - start > limit:
            return "gave up"
    return "ok"


signal.signal(signal.SIGALRM, on_alarm)
for rep in range(3):
    fired.clear()
    signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
    status = spin_until(5)
    signal.setitimer(signal.ITIMER_REAL, 0)
    print(rep, "alarm loop", status, len(fired) >= 5)

# A handler that raises: the exception comes out of the hot loop.
class Alarm(Exception):
    pass


def raising(signum, frame):
    raise Alarm(frame.f_code.co_name)


def busy():
    s = 0
    i = 0
    start = time.monotonic()
    # Armed here so that the handler always finds this frame running.
    signal.setitimer(signal.ITIMER_REAL, 0.005)
    while True:
        s += i & 3
        i += 1
        if i % 200000 == 0 and time.monotonic() - start > 5:
            return "gave up"


signal.signal(signal.SIGALRM, raising)
for rep in range(3):
    try:
        print(rep, "busy", busy())
    except Alarm as e:
        print(rep, "alarm raised in", e)
    signal.setitimer(signal.ITIMER_REAL, 0)


def interrupt_at(n, k):
    s = 0
    for i in range(n):
        s += i
        if i == k:
            os.kill(os.getpid(), signal.SIGINT)
        s -= 1
    return s


for rep in range(4):
    k = 5000 + rep * 500
    try:
        print(rep, "not interrupted", interrupt_at(N, k))
    except KeyboardInterrupt as e:
        tb = e.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        print(rep, "KeyboardInterrupt at i =", tb.tb_frame.f_locals["i"], "line", tb.tb_lineno)

seen = []


def on_usr1(signum, frame):
    seen.append((frame.f_code.co_name, frame.f_locals.get("i"), frame.f_lineno))


signal.signal(signal.SIGUSR1, on_usr1)


def usr1_loop(n, every):
    i = 0
    while i < n:
        if i % every == every - 1:
            os.kill(os.getpid(), signal.SIGUSR1)
        i += 1
    return i


for rep in range(3):
    seen.clear()
    print(rep, "usr1", usr1_loop(N, 1500 + rep), seen)

# At module level.
seen.clear()
j = 0
for j in range(N):
    if j == 6543:
        os.kill(os.getpid(), signal.SIGUSR1)
print("module usr1", j, seen)
