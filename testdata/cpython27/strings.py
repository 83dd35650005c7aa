# String building: concatenation, join, formatting, methods.
import sys

def build(n):
    parts = []
    s = ''
    for i in xrange(n):
        parts.append(str(i % 97))
        if i % 100 == 0:
            s += 'x%d,' % (i // 100)
    joined = ','.join(parts)
    return len(joined), joined[:20], len(s), s[-12:], joined.count('9')

def words(n):
    out = 0
    w = 'redmagic'
    for i in xrange(n):
        out += len(w.upper()) + w.find('m') + (1 if w.startswith('red') else 0)
    return out

n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
print build(n)
print words(n)
