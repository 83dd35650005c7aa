# while_module.py N: a `while` loop at module level (globals; the
# POP_JUMP_BACKWARD_IF_* back-edges of CPython 3.11).
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
i = 0
s = 0
while i < n:
    s += i % 7
    i += 1
print(s)
