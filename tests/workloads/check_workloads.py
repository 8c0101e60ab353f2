#!/usr/bin/python3
"""Run every workload of bench/manifest/synthetic.json and classic.json at the `tiny` scale
under the system malloc and under build/libtinymalloc.so (LD_PRELOAD), and check the contract of
bench/manifest/README.md: exit 0, one valid `TMBENCH {json}` line whose malloc_from names
the allocator that really served malloc. Also: --latency output, --help, a bad option
(exit 2), and that a broken allocator (tests/workloads/broken_malloc.c) makes a workload
fail instead of finishing. Prints PASS:/FAIL:/SKIP: lines for tests/run.py."""
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import manifest  # noqa: E402
# The programs of workloads/synthetic: the synthetic group and the classic benchmarks.
MANIFESTS = {g: os.path.join(ROOT, "bench", "manifest", f"{g}.json") for g in ("synthetic", "classic")}
LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
TIMEOUT = 30
REQUIRED = {"workload": str, "ops": int, "seconds": (int, float), "ops_per_sec": (int, float),
            "threads": int, "seed": int, "malloc_from": str}
failed = 0


def report(ok, name, why=""):
    global failed
    print(f"{'PASS' if ok else 'FAIL'}: {name}" + ("" if ok else f"  ({why})"), flush=True)
    failed += not ok


def run(cmd, preload=None, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra_env or {})
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors="replace", timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return None, "", f"timed out after {TIMEOUT} s"


def parse(w, rc, out, err):
    """Return (result dict, None) or (None, why)."""
    if rc != 0:
        return None, f"exit {rc}: {err.strip()[-300:]}"
    lines = [l for l in out.splitlines() if l.startswith("TMBENCH ")]
    if len(lines) != 1 or not re.search(w["check"]["stdout_regex"], out, re.M):
        return None, f"{len(lines)} TMBENCH lines in stdout"
    try:
        r = json.loads(lines[0][len("TMBENCH "):])
    except ValueError as e:
        return None, f"bad JSON: {e}"
    for k, t in REQUIRED.items():
        if not isinstance(r.get(k), t):
            return None, f"key {k!r} missing or not {t}"
    # An entry may run another entry's program with other arguments: the program names itself.
    if r["workload"] != os.path.basename(w["cmd"][0]) or r["ops"] <= 0 or r["seconds"] <= 0:
        return None, f"workload/ops/seconds wrong: {r['workload']} {r['ops']} {r['seconds']}"
    return r, None


def check_run(w, tag, preload, lib_re, args=()):
    rc, out, err = run(w["cmd"] + w["scales"]["tiny"] + list(args), preload)
    r, why = parse(w, rc, out, err)
    if r and not re.search(lib_re, os.path.basename(r["malloc_from"])):
        r, why = None, f"malloc_from is {r['malloc_from']}, expected {lib_re}"
    report(r is not None, f"{tag}:{w['name']}", why)
    return r


def main():
    workloads = []
    for group, path in MANIFESTS.items():
        # Thread sweeps at 1 and 2 threads: every program runs single- and multi-threaded.
        ws = manifest.load([path], threads=[1, 2])
        report(all(w["group"] == group for w in ws), f"manifest-group:{group}", f"a workload of {path} is not in {group}")
        workloads += ws
    build = subprocess.run(["make", "-s", "workloads"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    report(build.returncode == 0, "build", build.stdout[-500:])
    if build.returncode:
        return 1
    names = [w["name"] for w in workloads]
    report(len(set(names)) == len(names), "manifest", "duplicate names")

    for w in workloads:
        check_run(w, "glibc", None, r"^libc[.-]")
        if w.get("latency_args"):
            r = check_run(w, "latency", None, r"^libc[.-]", w["latency_args"])
            lat = r and r.get("latency_ns")
            ok = isinstance(lat, dict) and all(
                isinstance(lat.get(k), dict) and all(isinstance(lat[k].get(q), (int, float))
                                                     for q in ("p50", "p99", "p999"))
                for k in ("malloc", "free"))
            report(bool(ok), f"latency-keys:{w['name']}", "latency_ns missing or malformed")
        rc, out, _ = run([w["cmd"][0], "--help"])
        report(rc == 0 and "usage:" in out, f"help:{w['name']}", f"exit {rc}")
        rc, _, err = run([w["cmd"][0], "--no-such-option"])
        report(rc == 2 and "unknown option" in err, f"bad-option:{w['name']}", f"exit {rc}")

    # A broken allocator must make a workload fail loudly, not look fast.
    with tempfile.TemporaryDirectory() as tmp:
        shim = os.path.join(tmp, "broken_malloc.so")
        src = os.path.join(ROOT, "tests", "workloads", "broken_malloc.c")
        cc = subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", shim, src, "-ldl"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if cc.returncode:
            report(False, "broken-allocator", cc.stdout[-300:])
        else:
            w = next(w for w in workloads if w["name"] == "invsq-wset")
            rc, _, err = run(w["cmd"] + w["scales"]["tiny"], shim, {"BROKEN_MALLOC": "corrupt"})
            report(rc == 1 and "invsq-wset: pattern mismatch in block" in err,
                   "broken-allocator:corrupt", f"exit {rc}: {err.strip()[-200:]}")
            rc, _, err = run(w["cmd"] + w["scales"]["tiny"], shim, {"BROKEN_MALLOC": "null"})
            report(rc == 1 and "returned NULL" in err, "broken-allocator:null",
                   f"exit {rc}: {err.strip()[-200:]}")

    # The same runs with tinymalloc preloaded, if it builds.
    if not os.path.exists(LIB):
        subprocess.run(["make", "-s", "lib"], cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=300)
    if not os.path.exists(LIB):
        print("SKIP: tinymalloc (build/libtinymalloc.so does not exist and `make lib` did not make it)")
    else:
        for w in workloads:
            check_run(w, "tinymalloc", LIB, r"libtinymalloc")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
