#!/usr/bin/python3
"""Writes the sample profiles of tests/tuning/samples/ (format tinymalloc-profile-1), made up by
hand until real ones exist, deterministic: `python3 tests/tuning/make_samples.py`.

  single.json      one process: a few hot tiny sizes, a spread of small ones, two pooled rows
  build/*.json     a build: make (parent), two cc1 children and an as child, to merge
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "samples")


def row(size, count, peak, live, mean_life, short_frac, pooled=False):
    freed = count - live
    r = [size, count, peak, live, int(freed * mean_life), int(freed * short_frac)]
    return r + [1] if pooled else r


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=None, separators=(", ", ": "))
        f.write("\n")


def single():
    rng = random.Random(7)
    rows = [row(24, 50000, 3000, 12, 40.0, 0.8), row(40, 20000, 900, 0, 200.0, 0.3),
            row(72, 8000, 2500, 100, 5000.0, 0.01), row(0, 3, 1, 0, 1.0, 1.0)]
    for s in sorted(rng.sample(range(100, 8000), 40)):
        c = rng.randint(1, 400)
        p = rng.randint(1, c)
        rows.append(row(s, c, p, rng.randint(0, p), rng.uniform(10, 3000), rng.random()))
    rows.append(row(12000, 30, 2, 0, 50.0, 0.5))
    rows.append(row(131072, 5, 2, 1, 10.0, 0.0, pooled=True))
    rows.append(row(1 << 20, 1, 1, 1, 0.0, 0.0, pooled=True))
    ticks = sum(r[1] for r in rows)
    write(os.path.join(OUT, "single.json"), {"format": "tinymalloc-profile-1", "pid": 4242, "ppid": 1,
                                             "exe": "/usr/bin/sample", "ticks": ticks, "sizes": rows})


def build():
    procs = [
        (5000, 1, "/usr/bin/make", [row(24, 300, 120, 5, 20.0, 0.5), row(100, 40, 40, 40, 0.0, 0.0)]),
        (5001, 5000, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
         [row(24, 9000, 2000, 10, 300.0, 0.4), row(56, 4000, 1500, 0, 900.0, 0.1),
          row(1000, 64, 64, 64, 0.0, 0.0), row(200000, 3, 1, 0, 5.0, 0.0)]),
        (5002, 5000, "/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
         [row(24, 7000, 2600, 10, 300.0, 0.4), row(56, 3000, 900, 0, 900.0, 0.1),
          row(1000, 64, 64, 64, 0.0, 0.0), row(4000, 10, 5, 0, 10.0, 0.5)]),
        (5003, 5000, "/usr/bin/x86_64-linux-gnu-as", [row(24, 500, 50, 0, 10.0, 0.9), row(300, 10, 10, 0, 2.0, 1.0)]),
    ]
    for pid, ppid, exe, rows in procs:
        rows = [r if r[0] <= 65536 else [1 << (r[0] - 1).bit_length()] + r[1:] + [1] for r in rows]
        write(os.path.join(OUT, "build", f"prof.{pid}.json"),
              {"format": "tinymalloc-profile-1", "pid": pid, "ppid": ppid, "exe": exe,
               "ticks": sum(r[1] for r in rows), "sizes": rows})


if __name__ == "__main__":
    os.makedirs(os.path.join(OUT, "build"), exist_ok=True)
    single()
    build()
