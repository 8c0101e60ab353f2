#!/usr/bin/python3
"""Other projects' test suites run against tinymalloc through LD_PRELOAD (issue 8).

  mimalloc-stress  mimalloc's test/test-stress.c from the Debian source package `mimalloc`,
                   built standalone against the standard malloc API (-DUSE_STD_MALLOC: its own
                   switch) and run with a few thread counts / scales / iterations. It fills
                   every block with a pattern and aborts on a changed one.
  python-regrtest  CPython's regression tests from Debian's libpython3.11-testsuite, run by
                   /usr/bin/python3 -m test with PYTHONMALLOC=malloc (every object through
                   malloc), once under glibc and once under tinymalloc; each test case must end
                   the same way under both (a difference is re-run once under both, to tell
                   a flaky test from a real one).

Every run under tinymalloc also proves that tinymalloc served it: its JSON statistics,
written by each process, must count allocations.

Fetched and built files live under cache/outside/ (ignored by git), fetched once. Fetching
needs root (apt-get: dpkg-dev, deb-src entries, the source package, the test-suite package);
when something cannot be had, that suite prints SKIP with the reason.

usage: tests/outside/outside.py [--full] [--no-install] [--lib PATH] [SUITE...]
  --full        the bigger run (more Python modules, more stress configurations)
  --no-install  never call apt-get: SKIP what is missing
  --lib PATH    the library to preload (default build/release/libtinymalloc.so)
  SUITE         mimalloc-stress and/or python-regrtest (default both)

Prints `PASS: ...`, `FAIL: ...`, `SKIP: ...` lines (tests/run.py counts them).
Exit status: 0 nothing failed, 1 something failed, 2 usage error.
"""
import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, "cache", "outside")
PYTHON = "/usr/bin/python3"
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from debian_apt import Apt, Unavailable  # noqa: E402  (this suite cannot run here: SKIP)

# (threads, scale, iterations) for test-stress. Quick: about 10 s in all on 2 busy cores.
STRESS_QUICK = [(2, 50, 20), (8, 25, 10), (32, 10, 5)]
STRESS_FULL = STRESS_QUICK + [(4, 100, 50), (16, 50, 20), (64, 10, 10), (8, 200, 20)]

# Allocation-heavy modules of CPython's test suite that pass under glibc here.
PY_QUICK = ["test_dict", "test_list", "test_set", "test_unicode", "test_bytes", "test_json", "test_re",
            "test_threading", "test_gc", "test_deque", "test_collections", "test_weakref", "test_pickle",
            "test_array", "test_memoryview", "test_struct"]
PY_FULL = PY_QUICK + ["test_tuple", "test_heapq", "test_itertools", "test_sort", "test_marshal",
                      "test_ordered_dict", "test_descr", "test_bigmem", "test_mmap", "test_zlib",
                      "test_decimal", "test_io", "test_xml_etree", "test_email",
                      "test_ctypes", "test_string", "test_functools", "test_copy", "test_csv",
                      "test_difflib", "test_textwrap", "test_statistics", "test_fractions",
                      "test_long", "test_float", "test_format", "test_queue", "test_concurrent_futures",
                      "test_subprocess"]




def log(msg):
    print(f"outside: {msg}", flush=True)


def clean_env():
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "MALLOC_CONF", "TINYMALLOC_CONF", "PYTHONMALLOC", "MALLOC_CHECK_",
              "MALLOC_PERTURB_", "GLIBC_TUNABLES"):
        env.pop(k, None)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env["LC_ALL"] = "C.UTF-8"
    return env


def sh(cmd, cwd=None, env=None, timeout=1800):
    log("$ " + " ".join(shlex.quote(c) for c in cmd) + (f"   (in {os.path.relpath(cwd, ROOT)})" if cwd else ""))
    return subprocess.run(cmd, cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout)


def tail(text, n=15):
    return "\n".join("    " + line for line in text.splitlines()[-n:])


# ---- tinymalloc's own proof that it served a run -----------------------------------------
def tm_env(lib, statdir):
    env = clean_env()
    env["LD_PRELOAD"] = lib
    env["TINYMALLOC_CONF"] = f"stats:json,stats_file:{statdir}/tm.%p.json"
    return env


def tm_served(statdir):
    """(processes, allocations) counted by tinymalloc's statistics files in statdir."""
    procs = allocs = 0
    for f in glob.glob(os.path.join(statdir, "tm.*.json")):
        try:
            for line in open(f):
                if line.strip():
                    d = json.loads(line)
                    procs += 1
                    allocs += sum(c["allocs"] for c in d["classes"]) + d["huge"]["allocs"]
        except (OSError, ValueError, KeyError):
            pass
    return procs, allocs


# ---- mimalloc's stress test --------------------------------------------------------------
def mimalloc_stress(apt, lib, configs):
    name = "mimalloc-stress"
    try:
        tree = apt.source("mimalloc", os.path.join(CACHE, "mimalloc"))
    except Unavailable as e:
        print(f"SKIP: {name} (cannot fetch the Debian source package mimalloc: {e})")
        return 0
    src = os.path.join(tree, "test", "test-stress.c")
    if not os.path.exists(src) or "USE_STD_MALLOC" not in open(src, errors="replace").read():
        print(f"FAIL: {name} ({os.path.relpath(src, ROOT)} missing or without USE_STD_MALLOC)")
        return 1
    exe = os.path.join(CACHE, "mimalloc", "test-stress")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        # Third-party code: compiled with its own warnings shown, not as errors.
        p = sh(["cc", "-O2", "-g", "-DUSE_STD_MALLOC", "-pthread", src, "-o", exe])
        if p.returncode != 0:
            print(tail(p.stdout))
            print(f"FAIL: {name} (test-stress.c does not build)")
            return 1
    log(f"{name}: {os.path.relpath(tree, ROOT)}/test/test-stress.c built with -DUSE_STD_MALLOC")
    fails = 0
    for threads, scale, iters in configs:
        case = f"{name} threads={threads} scale={scale} iter={iters}"
        args = [exe, str(threads), str(scale), str(iters)]
        times = {}
        for alloc in ("glibc", "tinymalloc"):
            with tempfile.TemporaryDirectory() as statdir:
                env = tm_env(lib, statdir) if alloc == "tinymalloc" else clean_env()
                t0 = time.monotonic()
                try:
                    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, errors="replace", timeout=600)
                    rc, out = p.returncode, p.stdout
                except subprocess.TimeoutExpired:
                    rc, out = -1, "(timed out after 600 s)"
                times[alloc] = time.monotonic() - t0
                served = tm_served(statdir) if alloc == "tinymalloc" else None
            if rc != 0:
                print(tail(out))
                print(f"FAIL: {case} (under {alloc}: exit status {rc})")
                fails += 1
                break
            if served is not None and served[1] <= 0:
                print(f"FAIL: {case} (tinymalloc's statistics counted no allocation: preload not applied)")
                fails += 1
                break
        else:
            print(f"PASS: {case} (glibc {times['glibc']:.1f} s, tinymalloc {times['tinymalloc']:.1f} s, "
                  f"{served[1]} allocations served by tinymalloc)")
    return fails


# ---- CPython's regression tests ------------------------------------------------------------
def junit_outcomes(path):
    """{test case id: ok|failure|error|skipped} from regrtest's --junit-xml file."""
    out = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    for tc in root.iter("testcase"):
        kids = {c.tag for c in tc}
        if "error" in kids:
            res = "error"
        elif "failure" in kids:
            res = "failure"
        elif "skipped" in kids or tc.get("status") == "skipped":
            res = "skipped"
        else:
            res = "ok"
        out[tc.get("name")] = res
    return out


def regrtest(modules, env, xml, timeout):
    cmd = [PYTHON, "-m", "test", "-j2", "--timeout", "600", "--junit-xml", xml] + modules
    env = dict(env)
    env["PYTHONMALLOC"] = "malloc"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    log("$ " + ("LD_PRELOAD=... " if "LD_PRELOAD" in env else "") + "PYTHONMALLOC=malloc " + " ".join(cmd))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as cwd:  # the suite writes temporary files in its cwd
        try:
            p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", timeout=timeout)
            rc, out = p.returncode, p.stdout
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
            rc, out = -1, out + f"\n(timed out after {timeout} s)"
    return rc, out, time.monotonic() - t0, junit_outcomes(xml)


def python_regrtest(apt, lib, modules):
    name = "python-regrtest"
    try:
        apt.install(["libpython3.11-testsuite"])
    except Unavailable as e:
        print(f"SKIP: {name} (cannot install Debian's libpython3.11-testsuite: {e})")
        return 0
    vers = subprocess.run([PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          stdout=subprocess.PIPE, text=True).stdout.strip()
    missing = [m for m in modules if not os.path.exists(f"/usr/lib/python{vers}/test/{m}.py")
               and not os.path.isdir(f"/usr/lib/python{vers}/test/{m}")]
    if missing:
        log(f"{name}: Python {vers}'s test suite here lacks {' '.join(missing)}: left out")
        modules = [m for m in modules if m not in missing]
    if not modules:
        print(f"SKIP: {name} ({PYTHON} is Python {vers}; its test suite has none of the modules)")
        return 0
    work = tempfile.mkdtemp(prefix="tm-outside-")
    try:
        return _python_compare(name, lib, modules, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _python_compare(name, lib, modules, work):
    statdir = os.path.join(work, "stats")
    os.makedirs(statdir)
    timeout = 120 + 30 * len(modules)
    rc_g, out_g, t_g, res_g = regrtest(modules, clean_env(), os.path.join(work, "glibc.xml"), timeout)
    if res_g is None or not res_g:
        print(tail(out_g))
        print(f"FAIL: {name} (no results under glibc, exit {rc_g})")
        return 1
    rc_t, out_t, t_t, res_t = regrtest(modules, tm_env(lib, statdir), os.path.join(work, "tm.xml"), timeout)
    procs, allocs = tm_served(statdir)
    if res_t is None:
        print(tail(out_t, 30))
        print(f"FAIL: {name} (no results under tinymalloc, exit {rc_t})")
        return 1
    diff = sorted(k for k in set(res_g) | set(res_t) if res_g.get(k) != res_t.get(k))
    if diff or rc_g != rc_t:
        # Once more, only the modules concerned, under both: a flaky test differs again or not.
        mods = sorted({k.split(".")[1] for k in diff if k.count(".") >= 2 and k.split(".")[1] in modules}) or modules
        log(f"{name}: {len(diff)} test cases differ ({', '.join(diff[:5])}...); re-running {' '.join(mods)}")
        _, _, _, r2g = regrtest(mods, clean_env(), os.path.join(work, "glibc2.xml"), timeout)
        _, out2t, _, r2t = regrtest(mods, tm_env(lib, statdir), os.path.join(work, "tm2.xml"), timeout)
        r2g, r2t = r2g or {}, r2t or {}
        still = [k for k in diff if r2g.get(k) != r2t.get(k)]
        if still or (not diff and rc_g != rc_t):
            for k in still[:30]:
                print(f"    {k}: glibc {res_g.get(k, 'absent')}, tinymalloc {res_t.get(k, 'absent')}")
            print(tail(out2t, 30))
            print(f"FAIL: {name} ({len(still)} test cases end differently under tinymalloc; "
                  f"exit glibc {rc_g}, tinymalloc {rc_t})")
            return 1
        log(f"{name}: the differences did not repeat (flaky under load): {', '.join(diff[:10])}")
    if allocs <= 0:
        print(f"FAIL: {name} (tinymalloc's statistics counted no allocation: preload not applied)")
        return 1
    count = {}
    for v in res_t.values():
        count[v] = count.get(v, 0) + 1
    summary = ", ".join(f"{count[k]} {k}" for k in ("ok", "skipped", "failure", "error") if k in count)
    print(f"PASS: {name} ({len(modules)} modules, {len(res_t)} test cases end as under glibc: {summary}; "
          f"exit {rc_t}; glibc {t_g:.0f} s, tinymalloc {t_t:.0f} s; {procs} processes, "
          f"{allocs} allocations served by tinymalloc)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--lib", default=os.path.join(ROOT, "build", "release", "libtinymalloc.so"))
    ap.add_argument("suites", nargs="*", metavar="SUITE")
    args = ap.parse_args()
    suites = args.suites or ["mimalloc-stress", "python-regrtest"]
    for s in suites:
        if s not in ("mimalloc-stress", "python-regrtest"):
            print(f"outside.py: unknown suite {s!r} (mimalloc-stress, python-regrtest)", file=sys.stderr)
            return 2
    lib = os.path.abspath(args.lib)
    if not os.path.exists(lib):
        print(f"FAIL: outside (library missing: {lib}; make lib)")
        return 1
    apt = Apt(not args.no_install, log)
    fails = 0
    if "mimalloc-stress" in suites:
        fails += mimalloc_stress(apt, lib, STRESS_FULL if args.full else STRESS_QUICK)
    if "python-regrtest" in suites:
        fails += python_regrtest(apt, lib, PY_FULL if args.full else PY_QUICK)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
