# sys.settrace and sys.setprofile switched on in the middle of a hot loop
# (already traced by the JIT) and off again a while later: the counts of
# events show whether every line and call was seen.
import sys

N = 10000
events = {}


def tracer(frame, event, arg):
    key = (frame.f_code.co_name, event)
    events[key] = events.get(key, 0) + 1
    return tracer


def helper(x):
    return x * 2 + 1


def traced_loop(n, on, off):
    s = 0
    for i in range(n):
        s += helper(i) % 7
        if i == on:
            # The running frame gets line events only with f_trace set.
            sys._getframe().f_trace = tracer
            sys.settrace(tracer)
        elif i == off:
            sys.settrace(None)
    return s


def traced_while(n, on, off):
    i = 0
    s = 0
    while i < n:
        if i == on:
            sys.settrace(tracer)
        if i == off:
            sys.settrace(None)
        s += helper(i)
        i += 1
    return s


for rep in range(4):
    events.clear()
    on = 5000 + rep * 100
    s = traced_loop(N, on, on + 1000 + rep)
    print(rep, "settrace", s, sorted(events.items()))
    events.clear()
    s = traced_while(N, on, on + 2000)
    print(rep, "settrace while", s, sorted(events.items()))

# Opcode events: f_trace_opcodes on the running frame.
events.clear()


def opcodes(n):
    s = 0
    f = sys._getframe()
    for i in range(n):
        s ^= i
        if i == 6000:
            f.f_trace_opcodes = True
            f.f_trace = tracer
            sys.settrace(tracer)
        if i == 6100:
            sys.settrace(None)
            f.f_trace = None
    return s


print("opcodes", opcodes(N), sorted(events.items()))

prof = {}


def profiler(frame, event, arg):
    name = getattr(arg, "__name__", None) if event.startswith("c_") else frame.f_code.co_name
    key = (name, event)
    prof[key] = prof.get(key, 0) + 1


def profiled_loop(n, on, off):
    s = 0
    xs = []
    for i in range(n):
        s += helper(i)
        xs.append(i)
        if i == on:
            sys.setprofile(profiler)
        elif i == off:
            sys.setprofile(None)
    return s, len(xs)


for rep in range(3):
    prof.clear()
    on = 5500 + rep * 10
    print(rep, "setprofile", profiled_loop(N, on, on + 700), sorted(prof.items(), key=str))

# Module level, with a line counter for this file's module frame.
events.clear()
total = 0
for k in range(N):
    total += k
    if k == 7000:
        sys._getframe().f_trace = tracer
        sys.settrace(tracer)
    if k == 7300:
        sys.settrace(None)
        sys._getframe().f_trace = None
print("module settrace", total, sorted(events.items()))

