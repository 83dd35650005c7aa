# The file descriptors a program sees: none but its own and the inherited
# ones, before and after loops get hot, and in a child started with
# stdin closed (which must find fd 0 closed, not reused).
import os
import subprocess
import sys

N = 6000


def fds():
    return sorted(int(f) for f in os.listdir("/proc/self/fd"))


print("start", fds())
s = 0
for i in range(N):
    s += i % 3
print("after loop", s, fds())
r, w = os.pipe()
fd = os.open(os.devnull, os.O_RDONLY)
print("new fds", r, w, fd)
for x in (r, w, fd):
    os.close(x)

child = """if 1:
    import os, sys
    try:
        os.fstat(0)
        print("fd 0 open")
    except OSError as e:
        print("fd 0 closed", e.errno)
    print("stdin", sys.stdin)
    print("fds", sorted(int(f) for f in os.listdir("/proc/self/fd")))
    t = 0
    for i in range(%d):
        t += i
    print("child loop", t)
""" % N
for preexec in (None, lambda: os.close(0)):
    p = subprocess.run([sys.executable, "-c", child], preexec_fn=preexec,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True)
    print("child", p.returncode, p.stdout.splitlines(), p.stderr.splitlines()[-1:])
