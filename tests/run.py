#!/usr/bin/python3
"""Run every test of the project and print `N passed, N failed[, N skipped]` last.

Tests are discovered by name:
  tests/<area>/test_*.c   built by `make test-build` into build/<variant>/tests/<area>/test_*
                          (variants: release, ubsan, tsan); each binary runs once per variant.
                          A ThreadSanitizer report makes the tsan binary exit 66: a failure.
  tests/<area>/test_*.sh  run with bash.
  tests/<area>/test_*.py  run with `python3 -m unittest -v`.

A test program reports cases on stdout as lines `PASS: name`, `FAIL: name` or `SKIP: name`
(unittest's verbose lines are understood too). A program that exits non-zero without
reporting a failure counts as one failure; one that reports nothing and exits 0 as one pass;
exit status 77 alone means skipped.

Exit status: 0 when nothing failed, 1 when something failed, 2 on a usage error.
"""
import argparse
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("release", "ubsan", "tsan")
# unittest's report of a failure starts "FAIL: test_x (module.Class.test_x)": not a case line.
UNITTEST_HEADER = re.compile(r"^(FAIL|ERROR): \w+ \([\w.]+\)$")
UNITTEST_LINE = re.compile(r"^(test\w*) \(([\w.]+)\).*\.\.\. (ok|FAIL|ERROR|skipped.*|expected failure|unexpected success)$")


def discover(pattern_filter):
    tests = []
    tdir = os.path.join(ROOT, "tests")
    for area in sorted(os.listdir(tdir)):
        adir = os.path.join(tdir, area)
        if not os.path.isdir(adir):
            continue
        for name in sorted(os.listdir(adir)):
            if not name.startswith("test_"):
                continue
            rel = f"{area}/{name}"
            stem, ext = os.path.splitext(rel)
            if ext == ".c":
                for v in VARIANTS:
                    tests.append((f"{v}:{stem}", [os.path.join(ROOT, "build", v, "tests", stem)]))
            elif ext == ".sh":
                tests.append((stem, ["bash", os.path.join(adir, name)]))
            elif ext == ".py":
                tests.append((stem, [sys.executable, "-m", "unittest", "-v", os.path.join(adir, name)]))
    if pattern_filter:
        tests = [t for t in tests if re.search(pattern_filter, t[0])]
    return tests


def parse_cases(output):
    """Return a list of (status, name) with status in PASS/FAIL/SKIP."""
    cases = []
    for line in output.splitlines():
        line = line.rstrip()
        for tag in ("PASS", "FAIL", "SKIP"):
            if line.startswith(tag + ": ") and not UNITTEST_HEADER.match(line):
                cases.append((tag, line[len(tag) + 2:]))
        m = UNITTEST_LINE.match(line)
        if m:
            st = m.group(3)
            status = "PASS" if st in ("ok", "expected failure") else "SKIP" if st.startswith("skipped") else "FAIL"
            cases.append((status, f"{m.group(2)}.{m.group(1)}"))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", metavar="REGEX", help="run only tests whose name matches REGEX")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per test program (default 900)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every test's output")
    args = ap.parse_args()

    tests = discover(args.k)
    if not tests:
        print("no tests matched", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env["TM_ROOT"] = ROOT
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Every ThreadSanitizer report counts (exit 66); the user's own options come last and win.
    # A death test forks a child that may start threads, and a test process with two threads
    # has three (tinymalloc's purger): ThreadSanitizer would refuse such a child.
    env["TSAN_OPTIONS"] = ("exitcode=66 die_after_fork=0 " + env.get("TSAN_OPTIONS", "")).strip()
    passed = failed = skipped = 0
    failures = []
    for name, cmd in tests:
        t0 = time.monotonic()
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=args.timeout, text=True, errors="replace")
            out, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as e:
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            out += f"\n(timed out after {args.timeout} s)"
            rc = -1
        except OSError as e:
            out, rc = f"cannot run {cmd[0]}: {e}", -1
        dt = time.monotonic() - t0
        cases = parse_cases(out)
        if rc == 77 and not cases:
            cases = [("SKIP", "")]
        elif rc != 0 and not any(s == "FAIL" for s, _ in cases):
            cases.append(("FAIL", f"exit status {rc}"))
        elif not cases:
            cases = [("PASS", "")]
        n_fail = sum(1 for s, _ in cases if s == "FAIL")
        for s, cname in cases:
            full = f"{name}::{cname}" if cname else name
            if s == "PASS":
                passed += 1
            elif s == "SKIP":
                skipped += 1
                if args.verbose:
                    print(f"SKIP {full}")
            else:
                failed += 1
                failures.append(full)
        status = "FAIL" if n_fail else "ok"
        print(f"{status:4} {name} ({len(cases)} cases, {dt:.1f} s)", flush=True)
        if n_fail or args.verbose:
            tail = out.splitlines()[-60:]
            print("\n".join("    | " + line for line in tail), flush=True)
    if failures:
        print("\nfailed:")
        for f in failures:
            print("  " + f)
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
