#!/usr/bin/python3
"""Run the heap-error probes (build/probes/heap-probes, from tests/probes/heap_probes.c) under
every allocator of a selection, through the bench runner, and write a table probes x
allocators to results/probes/<date>-<commit>.md.

usage: scripts/probe_table.py [--allocators LIST] [--allocators-file FILE] [--out DIR]
                              [--bin PATH] [--probes NAME,...] [--tinymalloc PATH]

  --allocators LIST     the bench's allocator selection (bench/allocators.py; default its
                        default matrix); variants of an --allocators-file carry their
                        environment into the probes as into any bench run
  --out DIR             where the table and the run folder go (default results/probes)
  --bin PATH            the probe program (default build/probes/heap-probes; `make
                        bench-probes` builds it)
  --probes NAME,...     only these probes (default all; `heap-probes --list` names them)
  --tinymalloc PATH     probe this library as tinymalloc instead of build/libtinymalloc.so

The probes run as one workload of bench/run.py with no timed runs (`--runs 0`): the runner
resolves the allocators, records the environment, proves with its preload probe that each
allocator served malloc, and keeps the raw records in <out>/<date>-<commit>/ (plan.json,
env.json, raw/heap-probes/<allocator>/mem-1.{json,stdout,stderr}). This script only turns
their output into the table. Each probe runs in its own process (the probe program forks);
classes: detected, wrong-errno, warned, silent, crashed, hung (see the head of
tests/probes/heap_probes.c). An allocator whose library is not installed, or whose run failed,
gets no column and a line saying why.

Exit status: 0 the table was written, 1 no allocator could be run, 2 usage error,
3 the probe program is missing.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import allocators as registry  # noqa: E402
import benchlib  # noqa: E402
import run as runner  # noqa: E402

WORKLOAD = "heap-probes"
GROUPS = [("double-free", "Double frees"), ("invalid-free", "Invalid frees"),
          ("write-after-free", "Writes after free"), ("size", "Impossible sizes")]
HEX = re.compile(r"0x[0-9a-fA-F]+")
HUNG_S = 10   # heap_probes.c kills a probe after this long


def md_escape(s):
    return s.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def list_probes(binary, names):
    """-> [(name, group, what)] of the probes to run; BenchError when the program is unusable."""
    try:
        p = subprocess.run([binary, "--list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise benchlib.BenchError(f"{binary} --list: {e}", benchlib.EXIT_MISSING)
    if p.returncode != 0:
        raise benchlib.BenchError(f"{binary} --list failed: {p.stderr.strip()}", benchlib.EXIT_MISSING)
    probes = [tuple(line.split("\t")) for line in p.stdout.splitlines() if line.count("\t") == 2]
    if names:
        known = {x[0] for x in probes}
        bad = [n for n in names if n not in known]
        if bad:
            raise benchlib.BenchError(f"unknown probe(s) {', '.join(bad)} (`{binary} --list` names them)")
        probes = [x for x in probes if x[0] in names]
    return probes


def installed(spec, files, tinymalloc):
    """The selection as bench/run.py takes it, without the allocators whose library is missing
    (each named in the second list). Unknown names stay: the runner refuses them."""
    items = registry.parse_spec(spec) if spec else \
        [(n, None) for n in registry.DEFAULT] + \
        [(n, None) for f in files for n in registry.read_allocators_file(f) if n not in registry.DEFAULT]
    keep, missing = [], []
    for name, path in items:
        if name == "tinymalloc" and tinymalloc and not path:
            path = os.path.abspath(tinymalloc)
        tok = f"{name}={path}" if path else name
        try:
            registry.resolve(tok, files)
        except benchlib.BenchError as e:
            if e.code != benchlib.EXIT_MISSING:
                raise
            missing.append(f"{name}: {e}")
            continue
        keep.append(tok)
    return keep, missing


def read_results(run_dir, probes):
    """-> (columns: resolved allocators that ran every probe, {name: {probe: {class, note}}},
    problems: one line per allocator that did not)."""
    plan = benchlib.read_json(os.path.join(run_dir, "plan.json"))
    cols, results, problems = [], {}, []
    for a in plan["allocators"]:
        d = os.path.join(run_dir, "raw", WORKLOAD, a["name"])
        rec_path = os.path.join(d, "mem-1.json")
        if not os.path.exists(rec_path):
            problems.append(f"{a['name']}: not run")
            continue
        rec = benchlib.read_json(rec_path)
        if rec.get("status") != "ok":
            problems.append(f"{a['name']}: {rec.get('reason')}")
            continue
        rows = {}
        for line in benchlib.read_text(os.path.join(d, "mem-1.stdout")).splitlines():
            f = line.split("\t")
            if len(f) == 4:
                rows[f[0]] = {"class": f[2], "note": f[3]}
        if len(rows) != len(probes):
            problems.append(f"{a['name']}: {len(rows)} of {len(probes)} probes reported")
            continue
        cols.append(a)
        results[a["name"]] = rows
    return cols, results, problems


def render(cols, results, probes, problems, env, run_rel, tinymalloc):
    names = [a["name"] for a in cols]
    now = env.get("date", "")
    L = [f"# Heap-error probes, {now}", ""]
    tm_what = (f"the tinymalloc column: {tinymalloc}" if tinymalloc else
               f"tinymalloc `{benchlib.git_commit(ROOT, ['tinymalloc', 'Makefile']) or '?'}`")
    L.append(f"Project commit `{env.get('project_commit') or '?'}` ({tm_what}), "
             f"kernel {env.get('kernel', '?')}, {env.get('glibc', 'glibc ?')}, "
             f"CPU {env.get('cpu_model', '?')}. Made by `make bench-probes` (scripts/probe_table.py) through "
             f"the bench runner; its records are in [{run_rel}/]({run_rel}/). The probes are "
             "tests/probes/heap_probes.c, each in its own process.")
    L.append("")
    L.append("| allocator | version | library | environment |")
    L.append("|---|---|---|---|")
    for a in cols:
        envs = " ".join(f"`{k}={v}`" for k, v in (a.get("env") or {}).items())
        L.append(f"| {a['name']} | {a.get('version') or ''} | {a.get('lib') or a.get('expect') or ''} | {envs} |")
    L.append("")
    L.append("Classes: **detected** = stopped with a diagnosis (SIGABRT, or exit status with a message; "
             "for sizes: NULL with errno ENOMEM), **wrong-errno** = NULL but errno not ENOMEM (EINVAL for the "
             "bad alignment), **warned** = message on stderr, program went on, **silent** = nothing noticed, "
             f"**crashed** = killed by a signal without diagnosis, **hung** = killed after {HUNG_S} s. The notes "
             "below say more (addresses masked).")
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
            L.append(f"| {pname} | {md_escape(what)} | " + " | ".join(results[n][pname]["class"] for n in names) + " |")
    L += ["", "## Notes", "", "| probe | allocator | class | note |", "|---|---|---|---|"]
    for pname, _, _ in probes:
        for n in names:
            r = results[n][pname]
            if r["note"]:
                L.append(f"| {pname} | {n} | {r['class']} | {md_escape(HEX.sub('0x…', r['note']))} |")
    if problems:
        L += ["", "## Not run", ""] + [f"- {md_escape(p)}" for p in problems]
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allocators", metavar="LIST")
    ap.add_argument("--allocators-file", action="append", default=[], metavar="FILE")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "probes"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "probes", "heap-probes"))
    ap.add_argument("--probes", metavar="NAME,...")
    ap.add_argument("--tinymalloc", metavar="PATH")
    args = ap.parse_args(argv)

    if not os.access(args.bin, os.X_OK):
        print(f"probe_table: {args.bin} missing (make build/probes/heap-probes)", file=sys.stderr)
        return benchlib.EXIT_MISSING
    try:
        probes = list_probes(args.bin, [n for n in (args.probes or "").split(",") if n])
        keep, problems = installed(args.allocators, args.allocators_file, args.tinymalloc)
    except benchlib.BenchError as e:
        print(f"probe_table: {e}", file=sys.stderr)
        return e.code
    if not keep:
        print("probe_table: no allocator could be run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1

    stem = f"{datetime.datetime.now():%Y%m%d-%H%M%S}-{(benchlib.git_commit(ROOT) or 'nocommit')[:12]}"
    tmp = tempfile.mkdtemp(prefix="tm-probes-")
    try:
        # The manifest of this one workload is made here (the program and the probes are
        # options); the runner copies it into plan.json, so the run folder keeps it.
        with open(os.path.join(tmp, "probes.json"), "w") as f:
            json.dump({"workloads": [{
                "name": WORKLOAD, "group": "probes", "threads": 1,
                "description": "heap-error probes (tests/probes/heap_probes.c), one process each",
                "cmd": [os.path.abspath(args.bin)] + [p[0] for p in probes],
                "env": {"LC_ALL": "C"}, "timeout": 60 + (HUNG_S + 5) * len(probes),
                "check": {"exit": 0}}]}, f)
        rc = runner.main(["--manifest", tmp, "--allocators", ",".join(keep), "--runs", "0", "--no-strace",
                          "--no-latency", "--no-plots", "--no-latest", "-q", "--results-dir", args.out,
                          "--run-id", stem] + [x for f in args.allocators_file for x in ("--allocators-file", f)])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    run_dir = os.path.join(args.out, stem)
    if rc not in (benchlib.EXIT_OK, benchlib.EXIT_FAILED) or not os.path.exists(os.path.join(run_dir, "plan.json")):
        print(f"probe_table: the bench runner stopped (exit {rc})", file=sys.stderr)
        return rc or 1
    cols, results, failed = read_results(run_dir, probes)
    problems += failed
    if not cols:
        print("probe_table: no allocator could be run:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    env = benchlib.read_json(os.path.join(run_dir, "env.json"))
    md = os.path.join(args.out, stem + ".md")
    with open(md, "w") as fh:
        fh.write(render(cols, results, probes, problems, env, stem, args.tinymalloc))
    benchlib.write_json(os.path.join(run_dir, "probes.json"),
                        {"probes": probes, "results": results, "not_run": problems})
    print(f"probe_table: wrote {os.path.relpath(md, os.getcwd())}")
    for p in problems:
        print(f"probe_table: not run: {p}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
