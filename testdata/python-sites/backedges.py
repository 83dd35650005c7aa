# Each of CPython 3.11's back-edge opcodes closes one loop here: JUMP_BACKWARD
# (before quickening), JUMP_BACKWARD_QUICK, POP_JUMP_BACKWARD_IF_TRUE/FALSE,
# POP_JUMP_BACKWARD_IF_NOT_NONE/NONE and, in the yield from, JUMP_BACKWARD_NO_INTERRUPT.
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
def inner(n):
    for i in range(n):
        yield i
def outer(n):
    yield from inner(n)
print(for_loop(3000), while_true(3000), while_false(3000), while_not_none(3000), while_none(3000), sum(outer(3000)))
