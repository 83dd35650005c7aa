# Trace functions that are not plain functions: a bound method (as the
# trace module and coverage tools use) and a functools.partial, both of
# which the interpreter calls through a vectorcall that prepends an
# argument; and a callable instance. Tracing is on from each loop's start,
# so the JIT records the loop with tracing active. A program of its own
# because loops traced by earlier code change what gets recorded here.
import functools
import sys

N = 10000


class MethodTracer:
    def __init__(self):
        self.lines = 0

    def trace(self, frame, event, arg):
        if event == "line":
            self.lines += 1
        return self.trace


class CallableTracer(MethodTracer):
    def __call__(self, frame, event, arg):
        return self.trace(frame, event, arg) and self


def partial_tracer(box, frame, event, arg):
    if event == "line":
        box[0] += 1
    return functools.partial(partial_tracer, box)


def loop_under(tracer, n):
    sys._getframe().f_trace = tracer
    sys.settrace(tracer)
    s = 0
    for i in range(n):
        s += i
    sys.settrace(None)
    return s


for rep in range(2):
    m = MethodTracer()
    print(rep, "bound method tracer", loop_under(m.trace, N + rep), m.lines)
    c = CallableTracer()
    print(rep, "callable tracer", loop_under(c, N + rep), c.lines)
    box = [0]
    print(rep, "partial tracer", loop_under(functools.partial(partial_tracer, box), N + rep), box[0])

# At module level, as a coverage tool would start it.
m = MethodTracer()
sys._getframe().f_trace = m.trace
sys.settrace(m.trace)
total = 0
for k in range(N):
    total += k
sys.settrace(None)
sys._getframe().f_trace = None
print("module", total, m.lines)
