# Each of CPython 3.11's back-edge opcodes closes one loop here: JUMP_BACKWARD
# (before quickening), JUMP_BACKWARD_QUICK, POP_JUMP_BACKWARD_IF_TRUE/FALSE,
# POP_JUMP_BACKWARD_IF_NOT_NONE/NONE, the comparisons that take their jump back
# themselves (COMPARE_OP_INT_JUMP, _FLOAT_JUMP, _STR_JUMP) and, in the yield
# from, JUMP_BACKWARD_NO_INTERRUPT.
import sys
def for_loop(n):
    s = 0
    for i in range(n):
        s += i
    return s
def while_true(n):
    i = 0
    while i < n:
        i += 1
    return i
def while_false(n):
    i, done = 0, False
    while not done:
        i += 1
        done = i >= n
    return i
def while_not_none(n):
    node = None
    for k in range(n):
        node = (k, node)
    c = 0
    while node is not None:
        c += 1
        node = node[1]
    return c
def while_none(n):
    c, x = 0, None
    while x is None:
        c += 1
        if c >= n:
            x = c
    return c
def while_cmp_int(n):
    i = 0
    while i < n:
        i += 1
    return i
def while_cmp_float(n):
    x, lim = 0.0, float(n)
    while x < lim:
        x += 1.0
    return int(x)
def while_cmp_str(n):
    s, t = "", "a" * n
    while s != t:
        s += "a"
    return len(s)
# CPython specialises a comparison followed by a conditional jump into one
# instruction (COMPARE_OP_*_JUMP) once the function is quickened, after a
# few calls: each is warmed up on a short loop first.
for f in (while_cmp_int, while_cmp_float, while_cmp_str):
    for _ in range(16):
        f(2)
def inner(n):
    for i in range(n):
        yield i
def outer(n):
    yield from inner(n)
print(for_loop(3000), while_true(3000), while_false(3000), while_not_none(3000), while_none(3000), sum(outer(3000)))
print(while_cmp_int(3000), while_cmp_float(3000), while_cmp_str(3000))
