#!/usr/bin/python3
"""Run the heap-error probes (build/probes/heap-probes, from tests/probes/heap_probes.c) under
every allocator of the bench registry (bench/allocators.py: glibc = nothing preloaded, the
others through LD_PRELOAD) and write a table probes x allocators to
results/probes/<date>-<commit>.md, with the raw lines beside it in a .json file.

usage: scripts/probe_table.py [--allocators LIST] [--out DIR] [--bin PATH]
                              [--tinymalloc PATH [--tinymalloc-version TEXT]]

  --allocators LIST  comma list as for the bench (default: glibc,tinymalloc,jemalloc,mimalloc,tcmalloc;
                     NAME=/path/lib.so for any other)
  --out DIR          where the report goes (default results/probes)
  --bin PATH         the probe program (default build/probes/heap-probes; `make bench-probes`
                     builds it)
  --tinymalloc PATH  the tinymalloc library to probe instead of build/libtinymalloc.so (e.g. a
                     build of a clean export of a commit); --tinymalloc-version says what it is

Each probe runs in its own process (the probe program forks); classes: detected, wrong-errno,
warned, silent, crashed, hung (see the head of tests/probes/heap_probes.c). Before its probes, each
allocator is checked to be the one serving malloc (`heap-probes --which`); an allocator whose
library is missing or not in use gets no column and a line saying why.

Exit status: 0 the table was written, 1 no allocator could be run, 2 usage error,
3 the probe program is missing.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import allocators  # noqa: E402
import benchlib  # noqa: E402

DEFAULT = "glibc,tinymalloc,jemalloc,mimalloc,tcmalloc"
GROUPS = [("double-free", "Double frees"), ("invalid-free", "Invalid frees"),
          ("write-after-free", "Writes after free"), ("size", "Impossible sizes")]
HEX = re.compile(r"0x[0-9a-fA-F]+")


def clean_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "MALLOC_CONF", "TINYMALLOC_CONF", "MIMALLOC_OPTIONS", "GLIBC_TUNABLES",
              "MALLOC_CHECK_", "MALLOC_PERTURB_", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"):
        env.pop(k, None)
    env["LC_ALL"] = "C"
    return env


def run(argv, preload, timeout):
    env = clean_env()
    if preload:
        env["LD_PRELOAD"] = preload
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       errors="replace", timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def md_escape(s):
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allocators", default=DEFAULT)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "probes"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "probes", "heap-probes"))
    ap.add_argument("--tinymalloc", metavar="PATH")
    ap.add_argument("--tinymalloc-version", metavar="TEXT")
    args = ap.parse_args()

    if not os.access(args.bin, os.X_OK):
        print(f"probe_table: {args.bin} missing (make build/probes/heap-probes)", file=sys.stderr)
        return 3
    rc, listing, err = run([args.bin, "--list"], None, 30)
    if rc != 0:
        print(f"probe_table: {args.bin} --list failed: {err.strip()}", file=sys.stderr)
        return 3
    probes = [line.split("\t") for line in listing.splitlines() if line.count("\t") == 2]

    try:
        items = allocators.parse_spec(args.allocators)
    except benchlib.BenchError as e:
        print(f"probe_table: {e}", file=sys.stderr)
        return 2
    cols, problems, results = [], [], {}
    for name, path in items:
        if name == "tinymalloc" and args.tinymalloc and not path:
            path = os.path.abspath(args.tinymalloc)
        spec = f"{name}={path}" if path else name
        try:
            a = allocators.resolve(spec)[0]
        except benchlib.BenchError as e:
            problems.append(f"{name}: {e}")
            continue
        if name == "tinymalloc" and args.tinymalloc:
            a["version"] = args.tinymalloc_version or a.get("version")
        preload = a.get("lib")
        rc, which, err = run([args.bin, "--which"], preload, 30)
        served = which.strip()
        expect = preload or a.get("expect")
        if rc != 0 or not expect or not benchlib.same_file(served, expect):
            problems.append(f"{name}: malloc is served by {served or '?'}, not {expect}")
            continue
        print(f"probe_table: {name} ({a.get('version')}): running {len(probes)} probes", flush=True)
        rc, out, err = run([args.bin], preload, 60 + 15 * len(probes))  # (a probe ends in 10 s)
        rows = {}
        for line in out.splitlines():
            f = line.split("\t")
            if len(f) == 4:
                rows[f[0]] = {"class": f[2], "note": f[3]}
        if rc != 0 or len(rows) != len(probes):
            problems.append(f"{name}: the probe program exited {rc} after {len(rows)} of {len(probes)} probes"
                            f" ({benchlib.last_line(err)})")
            continue
        cols.append(a)
        results[name] = rows
    if not cols:
        print("probe_table: no allocator could be run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1

    now = datetime.datetime.now()
    head = (benchlib.git_commit(ROOT) or "nocommit").replace("-dirty", "")
    stem = f"{now:%Y%m%d-%H%M%S}-{head[:12]}"
    os.makedirs(args.out, exist_ok=True)
    env = benchlib.collect_env()
    names = [a["name"] for a in cols]

    L = [f"# Heap-error probes, {now:%Y-%m-%d %H:%M}", ""]
    tm_what = (f"the tinymalloc column: {args.tinymalloc}" if args.tinymalloc else
               f"tinymalloc `{benchlib.git_commit(ROOT, ['tinymalloc', 'Makefile']) or '?'}`")
    L.append(f"Project commit `{benchlib.git_commit(ROOT) or '?'}` ({tm_what}), "
             f"kernel {env.get('kernel', '?')}, {env.get('glibc', 'glibc ?')}, "
             f"CPU {env.get('cpu_model', '?')}. Made by `make bench-probes` (scripts/probe_table.py); "
             "the probes are tests/probes/heap_probes.c, each in its own process.")
    L.append("")
    L.append("| allocator | version | library |")
    L.append("|---|---|---|")
    for a in cols:
        L.append(f"| {a['name']} | {a.get('version') or ''} | {a.get('lib') or a.get('expect') or ''} |")
    L.append("")
    L.append("Classes: **detected** = stopped with a diagnosis (SIGABRT, or exit status with a message; "
             "for sizes: NULL with errno ENOMEM), **wrong-errno** = NULL but errno not ENOMEM (EINVAL for the bad alignment), **warned** = message on stderr, program went on, "
             "**silent** = nothing noticed, **crashed** = killed by a signal without diagnosis, "
             "**hung** = killed after 10 s. The notes below say more (addresses masked).")
    L.append("")
    L.append("| class | " + " | ".join(names) + " |")
    L.append("|---|" + "---|" * len(names))
    for cls in ("detected", "wrong-errno", "warned", "silent", "crashed", "hung"):
        counts = [sum(1 for r in results[n].values() if r["class"] == cls) for n in names]
        if any(counts):
            L.append(f"| {cls} | " + " | ".join(str(c) for c in counts) + " |")
    for group, title in GROUPS:
        gp = [p for p in probes if p[1] == group]
        if not gp:
            continue
        L += ["", f"## {title}", "", "| probe | what | " + " | ".join(names) + " |",
              "|---|---|" + "---|" * len(names)]
        for pname, _, what in gp:
            cells = [results[n][pname]["class"] for n in names]
            L.append(f"| {pname} | {md_escape(what)} | " + " | ".join(cells) + " |")
    L += ["", "## Notes", "", "| probe | allocator | class | note |", "|---|---|---|---|"]
    for pname, _, _ in probes:
        for n in names:
            r = results[n][pname]
            if r["note"]:
                L.append(f"| {pname} | {n} | {r['class']} | {md_escape(HEX.sub('0x…', r['note']))} |")
    if problems:
        L += ["", "## Not run", ""] + [f"- {md_escape(p)}" for p in problems]
    md = os.path.join(args.out, stem + ".md")
    with open(md, "w") as fh:
        fh.write("\n".join(L) + "\n")
    benchlib.write_json(os.path.join(args.out, stem + ".json"),
                        {"date": now.isoformat(timespec="seconds"), "commit": benchlib.git_commit(ROOT),
                         "env": env, "allocators": cols, "probes": probes, "results": results,
                         "not_run": problems})
    print(f"probe_table: wrote {os.path.relpath(md, ROOT)}")
    for p in problems:
        print(f"probe_table: not run: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
