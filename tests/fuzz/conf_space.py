#!/usr/bin/python3
"""Run tinymalloc under configurations drawn from its own option table.

The table is what `TINYMALLOC_CONF=help` prints (key, default, accepted values). Each
configuration sets every numeric, size and boolean option: at its minimum, its maximum, its
default or a random value in its range (log-uniform for sizes; powers of two and multiples of
16 where the table says so), in combination. Options whose range depends on others (medium_max
on arena_unit, huge_threshold_max on huge_threshold) are drawn again within the range the
allocator prints for the configuration drawn so far. Draws are seeded: `--seed S` and the
configuration's index name it, and `--only I` runs that one again.

Under each configuration:
  * the libFuzzer target (build/fuzz/fuzz_malloc, tinymalloc linked in) runs every input of
    the committed corpus once, or fuzzes for --fuzz-seconds: it checks contents, alignment,
    usable size and that no two live blocks overlap;
  * synthetic workloads (build/workloads, under LD_PRELOAD of build/release) run at the tiny
    scale, single- and multi-threaded, every block's pattern verified.
A run passes when every program exits 0 and no message from tinymalloc says an option was
refused (a drawn value is always inside the printed range, so a refusal is a defect too).

Prints one PASS or FAIL line per configuration (FAIL with the TINYMALLOC_CONF string and the
command that failed), then `configurations N, fuzz inputs N, workload allocations N,
failures N`. Exit status: 0 all
passed, 1 a configuration failed, 2 usage error, 3 a program to run is missing (build it with
`make lib workloads fuzz-build`).
"""
import argparse
import math
import os
import random
import re
import subprocess
import sys

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "build", "release", "libtinymalloc.so")
FUZZ = os.path.join(ROOT, "build", "fuzz", "fuzz_malloc")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
WORK_CORPUS = os.path.join(ROOT, "build", "fuzz", "corpus")
WORKLOADS = [  # (program, arguments): every tier, one thread and several, a second or less
    ("medium-mt", ["--scale", "0.0004", "--threads", "4", "--set", "16", "--min-size", "1",
                   "--max-size", "6000000"]),
    ("thread-phases", ["--scale", "tiny"]),
    ("server-xthread", ["--scale", "tiny"]),
    ("realloc-grow", ["--scale", "tiny"]),
    ("aligned", ["--scale", "tiny"]),
    ("size-classes", ["--scale", "tiny"]),
]
# Options the draw leaves alone: lists and paths (other tests cover them), and the ones that
# only write reports.
SKIP = {"classes", "prealloc", "stats", "stats_file", "profile"}
UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
TIMEOUT = 300


def parse_size(s):
    m = re.fullmatch(r"(\d+)([kmg]?)", s.strip())
    if not m:
        raise ValueError(f"not a size: {s!r}")
    return int(m.group(1)) * UNITS[m.group(2)]


def option_table(conf=""):
    """{key: (default, kind, lo, hi, flags)} from the allocator's help, given conf first."""
    env = dict(os.environ, TINYMALLOC_CONF=(conf + "," if conf else "") + "help", LD_PRELOAD=LIB)
    out = subprocess.run(["/bin/true"], env=env, stderr=subprocess.PIPE, text=True).stderr
    table = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        key, default, accepted = cells[0].strip("`"), cells[1].strip("`"), cells[2]
        if key in SKIP:
            continue
        if accepted == "0 or 1":
            table[key] = (default, "bool", 0, 1, set())
            continue
        m = re.search(r"(?:\(([0-9kmg]+)\)|([0-9kmg]+)) to ([0-9kmg]+)", accepted)
        if not m:
            raise ValueError(f"cannot read the range of {key}: {accepted!r}")
        lo = parse_size(m.group(1) or m.group(2))
        hi = parse_size(m.group(3))
        flags = {f for f, text in (("pow2", "power of two"), ("mul16", "multiple of 16"))
                 if text in accepted}
        kind = "size" if re.search(r"\d[kmg]\b", accepted) or default[-1:] in "kmg" else "num"
        table[key] = (default, kind, lo, hi, flags)
    if not table:
        raise RuntimeError(f"no option table from TINYMALLOC_CONF=help ({LIB}):\n{out[-500:]}")
    return table


def fits(v, flags):
    if "pow2" in flags:
        v = 1 << (v.bit_length() - 1)
    if "mul16" in flags:
        v -= v % 16
    return v


def draw(rng, spec):
    default, kind, lo, hi, flags = spec
    r = rng.random()
    if r < 0.2:
        v = lo
    elif r < 0.4:
        v = hi
    elif r < 0.5 and default.isdigit():
        return default
    elif kind == "size" and lo > 0:
        v = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    elif kind == "size":
        v = 0 if rng.random() < 0.2 else int(math.exp(rng.uniform(0, math.log(hi))))
    else:
        v = rng.randint(lo, hi)
    v = max(lo, min(hi, fits(v, flags)))
    if "pow2" in flags and v < lo:
        v = lo
    return str(v)


def configuration(seed, index, table):
    rng = random.Random(f"{seed}/{index}")
    picked = {k: draw(rng, spec) for k, spec in sorted(table.items())}
    conf = ",".join(f"{k}:{v}" for k, v in picked.items())
    # Ranges that follow from the others: ask the allocator under what was drawn.
    again = option_table(conf)
    for key in ("medium_max", "huge_threshold_max"):
        if key in again and again[key][2:4] != table[key][2:4]:
            picked[key] = draw(rng, again[key])
    return ",".join(f"{k}:{v}" for k, v in picked.items())


def run(cmd, conf, preload):
    env = dict(os.environ, TINYMALLOC_CONF=conf)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = LIB
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors="replace", timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT} s", 0
    refused = [l for l in p.stderr.splitlines() if l.startswith("tinymalloc:")]
    ops = 0  # fuzz inputs executed, or a workload's allocations
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", p.stderr) or \
        re.search(r'"ops": (\d+)', p.stdout)
    if m:
        ops = int(m.group(1))
    if p.returncode != 0 or refused:
        why = refused[:3] or p.stderr.strip().splitlines()[-5:]
        return False, f"exit {p.returncode}: " + " | ".join(why), ops
    return True, "", ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=20, help="configurations to draw (default 20)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the draws (default 1)")
    ap.add_argument("--only", type=int, metavar="I", help="run configuration I of the seed only")
    ap.add_argument("--fuzz-seconds", type=int, default=0,
                    help="fuzz this long under each configuration (default 0: replay the corpus)")
    ap.add_argument("--no-workloads", action="store_true", help="run the fuzz target only")
    a = ap.parse_args()
    if a.configs < 1 or a.fuzz_seconds < 0:
        ap.error("--configs must be 1 or more and --fuzz-seconds 0 or more")
    need = [LIB, FUZZ] + ([] if a.no_workloads else
                          [os.path.join(ROOT, "build", "workloads", w) for w, _ in WORKLOADS])
    missing = [p for p in need if not os.path.exists(p)]
    if missing:
        print(f"conf_space: missing {', '.join(missing)} (make lib workloads fuzz-build)",
              file=sys.stderr)
        return 3
    table = option_table()
    fuzz = [FUZZ, "-print_final_stats=1", "-rss_limit_mb=2048", "-timeout=60"]
    if a.fuzz_seconds:
        # libFuzzer writes new units into the first directory: the build's, never the
        # committed corpus, which it only reads.
        os.makedirs(WORK_CORPUS, exist_ok=True)
        fuzz += [f"-max_total_time={a.fuzz_seconds}", WORK_CORPUS, CORPUS]
    else:
        fuzz += ["-runs=0", CORPUS]
    indices = [a.only] if a.only is not None else range(a.configs)
    inputs = allocs = failures = 0
    for i in indices:
        conf = configuration(a.seed, i, table)
        cmds = [(fuzz, False)]
        if not a.no_workloads:
            cmds += [([os.path.join(ROOT, "build", "workloads", w), "--seed", str(i)] + args, True)
                     for w, args in WORKLOADS]
        bad = None
        for cmd, preload in cmds:
            ok, why, ops = run(cmd, conf, preload)
            if preload:
                allocs += ops
            else:
                inputs += ops
            if not ok:
                bad = (cmd, why)
                break
        if bad:
            failures += 1
            print(f"FAIL: configuration {i} (seed {a.seed}): TINYMALLOC_CONF={conf}")
            print(f"  {os.path.basename(bad[0][0])}: {bad[1]}")
            print(f"  again: tests/fuzz/conf_space.py --seed {a.seed} --only {i}")
        else:
            print(f"PASS: configuration {i} (seed {a.seed})")
        sys.stdout.flush()
    print(f"configurations {len(indices)}, fuzz inputs {inputs}, workload allocations {allocs}, "
          f"failures {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
