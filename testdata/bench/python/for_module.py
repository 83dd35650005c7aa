# for_module.py N: a `for` loop at module level (globals; JUMP_BACKWARD).
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
s = 0
for i in range(n):
    s += i % 7
print(s)
