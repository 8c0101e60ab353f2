#!/usr/bin/python3
"""Write the seed corpus of tests/fuzz/fuzz_malloc.c into tests/fuzz/corpus/ (committed).

Each seed is a short program in the target's input language (see the head of fuzz_malloc.c):
records of an op byte, a 2-byte slot and size/alignment bytes. Run again after changing the
input language; it rewrites the seed-*.bin files.

usage: tests/fuzz/make_corpus.py [OUT_DIR]
"""
import os
import random
import sys

MALLOC, MALLOC_UNWRITTEN, CALLOC, REALLOC, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, FREE = 0, 1, 2, 3, 4, 5, 6, 7
LIMITS = [256, 16 << 10, 512 << 10, 4 << 20]
CLASS_BYTES = [0, 8, 12, 15]  # a class byte of each range (the target takes it % 16)


def size_bytes(n):
    """(class byte, 2-byte value) that fuzz_malloc's get_size maps to about n bytes."""
    for cls, lim in zip(CLASS_BYTES, LIMITS):
        if n <= lim:
            v = n if lim <= 65536 else min(n // (lim // 65536), 65535)
            return bytes([cls, v & 0xFF, v >> 8])
    raise ValueError(n)


def rec(op, slot, size=None, extra=None):
    b = bytes([op, slot & 0xFF, (slot >> 8) & 0xFF])
    if op != FREE:
        b += size_bytes(size)
        if extra is not None:
            b += bytes([extra])
    return b


def align_byte(a):
    return a.bit_length() - 1


def seeds():
    out = {}
    out["malloc-free-tiny"] = b"".join(rec(MALLOC, i, 16 * (i + 1)) for i in range(8)) + \
        b"".join(rec(FREE, i) for i in range(8))
    out["malloc-each-class"] = b"".join(rec(MALLOC, i, n) for i, n in
                                        enumerate([0, 1, 15, 16, 17, 100, 128, 129, 1000, 4096, 8192, 8193,
                                                   16384, 20000, 65536, 131072, 262144, 1 << 20, 4 << 20]))
    out["calloc-sizes"] = b"".join(rec(CALLOC, i, n, k) for i, (n, k) in
                                   enumerate([(64, 0), (100, 3), (4096, 7), (10000, 1), (300000, 4), (2 << 20, 0)]))
    out["realloc-grow"] = b"".join(rec(REALLOC, 5, n) for n in
                                   [16, 32, 100, 1000, 8000, 9000, 16384, 70000, 500000, 3 << 20, 4 << 20])
    out["realloc-shrink"] = b"".join(rec(REALLOC, 9, n) for n in
                                     [4 << 20, 1 << 20, 200000, 20000, 8192, 4000, 100, 17, 1])
    out["realloc-zero"] = rec(MALLOC, 1, 100) + rec(REALLOC, 1, 0) + rec(REALLOC, 1, 50) + rec(REALLOC, 1, 0)
    out["realloc-null"] = rec(REALLOC, 2, 300) + rec(REALLOC, 3, 70000) + rec(FREE, 2) + rec(FREE, 3)
    for a in (16, 64, 4096, 65536, 1 << 20):
        out[f"posix_memalign-{a}"] = b"".join(rec(POSIX_MEMALIGN, i, n, align_byte(a)) for i, n in
                                              enumerate([1, 100, 5000, 100000]))
    out["aligned_alloc-mix"] = b"".join(rec(ALIGNED_ALLOC, i, 64 * (i + 1), i % 21) for i in range(21))
    out["memalign-mix"] = b"".join(rec(MEMALIGN, i, 1000 * (i + 1), 20 - i) for i in range(21))
    out["memalign-then-realloc"] = rec(MEMALIGN, 4, 3000, 12) + rec(REALLOC, 4, 50000) + rec(REALLOC, 4, 10)
    out["lifo-reuse"] = b"".join(rec(MALLOC, 0, 48) + rec(FREE, 0) for _ in range(20))
    out["fifo-free"] = b"".join(rec(MALLOC, i, 32) for i in range(64)) + b"".join(rec(FREE, i) for i in range(64))
    out["reverse-free"] = b"".join(rec(MALLOC, i, 200) for i in range(64)) + \
        b"".join(rec(FREE, i) for i in reversed(range(64)))
    out["many-slots"] = b"".join(rec(MALLOC, i, 24) for i in range(0, 1024, 3))
    out["slot-reuse-different-size"] = b"".join(rec(MALLOC, 7, n) for n in [8, 9000, 16, 300000, 64, 5 << 19])
    out["huge-pair"] = rec(MALLOC, 10, 4 << 20) + rec(MALLOC, 11, 4 << 20) + rec(FREE, 10) + \
        rec(MALLOC, 12, 3 << 20) + rec(REALLOC, 11, 2 << 20)
    out["page-boundaries"] = b"".join(rec(MALLOC, i, n) for i, n in
                                      enumerate([4095, 4096, 4097, 65535, 65536, 65537]))
    # A run freed inside a larger block made later and never written (a written one would
    # overwrite what the free left), and a block made at that run's start again, never written:
    # realloc and free must not take what the first free left there for a freed block (runs of
    # 10 and 20 arena units of 4 KiB; each input starts on an empty arena).
    out["unwritten-where-a-merged-run-started"] = \
        rec(MALLOC, 0, 40000) + rec(MALLOC, 1, 40000) + rec(MALLOC, 2, 40000) + rec(FREE, 1) + \
        rec(FREE, 0) + rec(MALLOC_UNWRITTEN, 3, 80000) + rec(FREE, 3) + rec(MALLOC, 0, 40000) + \
        rec(MALLOC_UNWRITTEN, 1, 40000) + rec(REALLOC, 1, 50000) + rec(MALLOC_UNWRITTEN, 4, 30000) + \
        rec(FREE, 4)
    out["free-empty-slots"] = b"".join(rec(FREE, i) for i in range(10))
    out["short-tail"] = rec(MALLOC, 3, 77)[:4]
    rnd = random.Random(8)
    for k in range(10):
        b = b""
        for _ in range(rnd.randint(20, 120)):
            op = rnd.choice([MALLOC, MALLOC, CALLOC, REALLOC, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, FREE, FREE])
            slot = rnd.randrange(32 if k < 5 else 1024)
            n = rnd.choice([rnd.randint(0, 256), rnd.randint(0, 16384), rnd.randint(0, 600000)])
            extra = rnd.randrange(21) if op in (POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN) else \
                rnd.randrange(8) if op == CALLOC else None
            b += rec(op, slot, n, extra)
        out[f"random-{k}"] = b
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.startswith("seed-") and f.endswith(".bin"):
            os.unlink(os.path.join(out_dir, f))
    s = seeds()
    for name, data in s.items():
        with open(os.path.join(out_dir, f"seed-{name}.bin"), "wb") as fh:
            fh.write(data)
    print(f"{len(s)} seeds in {out_dir}")


if __name__ == "__main__":
    main()
