"""Allocation-heavy Python 3 workload for the tinymalloc bench (real group, "python").

Run with Debian's /usr/bin/python3 and PYTHONMALLOC=malloc, so that every object allocation
goes to malloc (not to pymalloc's arenas) and a preloaded allocator serves it.

Usage: python3 churn.py [--scale] [default|quick|tiny]

Phases, all deterministic (own LCG, no `random`):
  trees    binary trees of small objects (__slots__ class) and tuples
  dicts    a str-keyed dict with random inserts/deletes of lists, plus a set
  strings  f-strings, join, replace, split, bytes encode/decode
Prints "checksum <hex>", a TMBENCH line and "check: ok" when the checksum equals the
expected value for the scale; exits 1 with a message on stderr otherwise.
"""
import os
import sys
import time

PARAMS = {
    "default": dict(depth=15, iters=40, dictops=2_000_000, dictsize=50_000, srounds=400_000),
    "quick": dict(depth=13, iters=10, dictops=200_000, dictsize=20_000, srounds=50_000),
    "tiny": dict(depth=9, iters=4, dictops=20_000, dictsize=2_000, srounds=4_000),
}
EXPECTED = {"default": "5f8bf67449d1", "quick": "90eadc993b2a", "tiny": "a5786347cce8"}
MASK = (1 << 48) - 1


class Node:
    __slots__ = ("left", "right")

    def __init__(self, left, right):
        self.left = left
        self.right = right


def make(d):
    if d == 0:
        return Node(None, None)
    d -= 1
    return Node(make(d), make(d))


def count(t):
    if t.left is None:
        return 1
    return 1 + count(t.left) + count(t.right)


def make_tuple(d):
    if d == 0:
        return ()
    d -= 1
    return (make_tuple(d), make_tuple(d))


def count_tuple(t):
    return 1 + sum(count_tuple(c) for c in t)


def main():
    args = [a for a in sys.argv[1:] if a != "--scale"]
    scale = args[0] if args else "default"
    if scale not in PARAMS:
        print(f"churn.py: unknown scale {scale!r} (default|quick|tiny)", file=sys.stderr)
        return 2
    if os.environ.get("PYTHONMALLOC") != "malloc":
        print("churn.py: warning: PYTHONMALLOC is not 'malloc'; pymalloc serves small objects",
              file=sys.stderr)
    p = PARAMS[scale]
    seed = 12345
    h = 0
    ops = 0

    def rnd(n):
        nonlocal seed
        seed = (seed * 25214903917 + 11) & MASK
        return (seed >> 16) % n

    def mix(x):
        nonlocal h
        h = (h * 31 + x) & MASK

    t0 = time.perf_counter()
    # phase 1: trees
    depth = p["depth"]
    long_lived = make(depth)
    for i in range(1, p["iters"] + 1):
        d = 4 + (i % (depth - 3))
        n = 0
        for _ in range(1 << (depth - d)):
            n += count(make(d))
        for _ in range(1 << max(0, depth - d - 2)):
            n += count_tuple(make_tuple(d))
        mix(n)
        ops += n
    mix(count(long_lived))

    # phase 2: dict/set churn
    table = {}
    seen = set()
    for i in range(1, p["dictops"] + 1):
        k = "k%d" % rnd(p["dictsize"])
        v = table.pop(k, None)
        if v is not None:
            mix(len(v) + v[0])
            seen.discard(k + "!")
        else:
            table[k] = [i + j for j in range(1, 2 + rnd(24))]
            seen.add(k + "!")
    mix(len(table))
    mix(len(seen))
    ops += p["dictops"]

    # phase 3: strings
    parts = []
    for i in range(1, p["srounds"] + 1):
        s = f"{i}:{'ab' * (1 + rnd(40))}|{i * 7}"
        if i % 3 == 0:
            s = s.replace("ab", "x")
        if i % 5 == 0:
            s = "-".join(s.split(":")).encode().decode()
        parts.append(s)
        if len(parts) >= 64:
            mix(len(",".join(parts)))
            parts = []
    mix(len(",".join(parts)))
    ops += p["srounds"]

    secs = time.perf_counter() - t0
    digest = "%012x" % h
    print(f"checksum {digest}")
    print('TMBENCH {"ops": %d, "seconds": %.6f, "ops_per_sec": %.1f}' % (ops, secs, ops / max(secs, 1e-9)))
    sys.stdout.flush()
    if EXPECTED[scale] != digest:
        print(f"churn.py: checksum {digest} != expected {EXPECTED[scale]}", file=sys.stderr)
        return 1
    print("check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
