#!/usr/bin/python3
"""Load and check the workload manifest (bench/manifest/*.json; schema in its README.md).

Usage: bench/manifest.py [--manifest PATH ...] [--scale NAME] [--threads LIST] [--json]
lists the workloads (name, group, scales, command at the scale).
Exit status: 0 ok, 2 a manifest file or workload is malformed (the message names it; an
unknown key is an error, with the closest known key suggested).

Placeholders replaced in cmd, scale/latency args, env values, cwd, build, prepare and
check.cmd: {root} the repository root, {build} its build/ folder, {cache} build/bench/cache/NAME
(a folder kept between runs for what `prepare` makes).

Thread sweeps: a workload whose cmd or scale arguments hold {threads} runs once per thread
count, as separate workloads NAME@T (T replacing {threads}; `threads` = T times the
workload's `threads_factor`, default 1, for a program whose --threads N starts more than N
threads). The counts are --threads (THREADS= in make), by default 1, the number of usable
CPUs and 4 times that: one thread, one per CPU, and oversubscribed. A name in a selection
picks every count of its sweep; NAME@T picks one. Workloads without {threads} run once.
"""
import argparse
import difflib
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import BenchError  # noqa: E402

DEFAULT_DIR = os.path.join(benchlib.ROOT, "bench", "manifest")
KNOWN_KEYS = {"name", "group", "description", "build", "prepare", "cmd", "scales", "latency_args", "timeout",
              "check", "env", "cwd", "threads", "threads_factor", "notes"}
THREADS = "{threads}"
MAX_THREADS = 1024
CHECK_KEYS = {"exit", "stdout_regex", "cmd", "timeout"}


def _unknown_keys(obj, known, where, inside=None):
    """BenchError naming every key of obj not in known, with the closest known key (a typo
    such as `chek` would otherwise be ignored silently: the workload would run unchecked)."""
    bad = sorted(k for k in obj if k not in known)
    if not bad:
        return
    parts = []
    for k in bad:
        close = difflib.get_close_matches(k, sorted(known), n=1)
        hint = f"did you mean `{close[0]}`?" if close else "known keys: " + ", ".join(sorted(known))
        parts.append(f"unknown key `{k}` ({hint})")
    raise BenchError(f"{where}: " + (f"in `{inside}`: " if inside else "") + "; ".join(parts))


def _argv(v, where, field, allow_null=True):
    if v is None and allow_null:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise BenchError(f"{where}: `{field}` must be a list of strings" + (" or null" if allow_null else ""))
    return list(v)


def check_workload(w, where):
    if not isinstance(w, dict):
        raise BenchError(f"{where}: a workload must be an object")
    name = w.get("name")
    named = isinstance(name, str) and benchlib.NAME_RE.fullmatch(name)
    _unknown_keys(w, KNOWN_KEYS, f"{where}: workload {name}" if named else where)
    if not named:
        raise BenchError(f"{where}: bad or missing `name` {name!r}")
    where = f"{where}: workload {name}"
    out = dict(w)
    out["cmd"] = _argv(w.get("cmd"), where, "cmd", allow_null=False)
    if not out["cmd"]:
        raise BenchError(f"{where}: `cmd` is empty")
    for f in ("build", "prepare", "latency_args"):
        out[f] = _argv(w.get(f), where, f)
    scales = w.get("scales", {}) or {}
    if not isinstance(scales, dict):
        raise BenchError(f"{where}: `scales` must be an object of name -> list of strings")
    out["scales"] = {k: _argv(v, where, f"scales.{k}", allow_null=False) for k, v in scales.items()}
    t = w.get("timeout", 300)
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
        raise BenchError(f"{where}: `timeout` must be a positive number of seconds")
    out["timeout"] = t
    env = w.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise BenchError(f"{where}: `env` must be an object of strings")
    if "LD_PRELOAD" in env:
        raise BenchError(f"{where}: `env` may not set LD_PRELOAD (the harness owns it)")
    out["env"] = env
    cwd = w.get("cwd")
    if cwd is not None and not isinstance(cwd, str):
        raise BenchError(f"{where}: `cwd` must be a string")
    th = w.get("threads")
    if th is not None and (not isinstance(th, int) or isinstance(th, bool) or th < 1):
        raise BenchError(f"{where}: `threads` must be a positive integer or null, not {th!r}")
    out["threads"] = th
    sweeps = any(THREADS in x for x in out["cmd"] + [a for v in out["scales"].values() for a in v])
    tf = w.get("threads_factor")
    if tf is not None and (not sweeps or not isinstance(tf, int) or isinstance(tf, bool) or tf < 1):
        raise BenchError(f"{where}: `threads_factor` must be a positive integer, and only in a workload "
                         f"whose cmd holds {THREADS}")
    if sweeps and th is not None:
        raise BenchError(f"{where}: `threads` is set by the sweep ({THREADS} in cmd); use `threads_factor` "
                         "when the program starts more threads than it is given")
    out["threads_factor"] = tf or 1
    out["sweeps"] = sweeps
    notes = w.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise BenchError(f"{where}: `notes` must be a string")
    chk = w.get("check") or {}
    if not isinstance(chk, dict):
        raise BenchError(f"{where}: `check` must be an object")
    _unknown_keys(chk, CHECK_KEYS, where, inside="check")
    ex = chk.get("exit", 0)
    if ex is not None and (not isinstance(ex, int) or isinstance(ex, bool)):
        raise BenchError(f"{where}: `check.exit` must be an integer or null")
    rx = chk.get("stdout_regex")
    if rx is not None:
        if not isinstance(rx, str):
            raise BenchError(f"{where}: `check.stdout_regex` must be a string")
        try:
            re.compile(rx, re.M)
        except re.error as e:
            raise BenchError(f"{where}: `check.stdout_regex` {rx!r}: {e}")
    out["check"] = {"exit": ex, "stdout_regex": rx, "cmd": _argv(chk.get("cmd"), where, "check.cmd"),
                    "timeout": chk.get("timeout")}
    out.setdefault("group", "")
    out.setdefault("description", "")
    return out


def default_thread_counts(ncpu=None):
    """1, the number of usable CPUs, and 4 times that."""
    n = ncpu or len(benchlib.usable_cpus()) or 1
    return sorted({1, n, 4 * n})


def parse_threads(spec):
    """'1,2,8' -> [1, 2, 8] (sorted, each once); BenchError names a bad token."""
    out = set()
    for tok in str(spec).replace(" ", ",").split(","):
        if not tok:
            continue
        if not tok.isdigit() or not 1 <= int(tok) <= MAX_THREADS:
            raise BenchError(f"bad thread count {tok!r} in {spec!r} (whole numbers 1 to {MAX_THREADS})")
        out.add(int(tok))
    if not out:
        raise BenchError(f"no thread count in {spec!r}")
    return sorted(out)


def expand_threads(workloads, counts):
    """Each workload that sweeps becomes one per count (NAME@T, with `sweep` = {base, threads});
    the others are kept as they are."""
    out = []
    for w in workloads:
        if not w.get("sweeps"):
            out.append(w)
            continue
        for t in counts:
            sub = lambda xs: [x.replace(THREADS, str(t)) for x in xs]  # noqa: E731
            e = dict(w, name=f"{w['name']}@{t}", cmd=sub(w["cmd"]), threads=t * w["threads_factor"],
                     scales={k: sub(v) for k, v in w["scales"].items()},
                     sweep={"base": w["name"], "threads": t})
            out.append(e)
    return out


def load(paths=None, threads=None):
    """-> list of workload dicts (with `manifest` = file), in file order, sweeps expanded to
    the thread counts `threads` (default_thread_counts() when None). Raises BenchError."""
    if not paths:
        paths = [DEFAULT_DIR]
    files = []
    for p in paths:
        if os.path.isdir(p):
            files.extend(sorted(glob.glob(os.path.join(p, "*.json"))))
        elif os.path.exists(p):
            files.append(p)
        else:
            raise BenchError(f"manifest {p}: no such file or folder")
    out, seen = [], {}
    for f in files:
        rel = os.path.relpath(f, benchlib.ROOT)
        try:
            with open(f) as fh:
                data = json.load(fh)
        except (OSError, ValueError) as e:
            raise BenchError(f"manifest {rel}: cannot read: {e}")
        wl = data.get("workloads") if isinstance(data, dict) else None
        if not isinstance(wl, list):
            raise BenchError(f"manifest {rel}: expected an object with a `workloads` list")
        for i, w in enumerate(wl):
            w = check_workload(w, f"manifest {rel} [{i}]")
            if w["name"] in seen:
                raise BenchError(f"manifest {rel}: workload {w['name']} already defined in {seen[w['name']]}")
            seen[w["name"]] = rel
            w["manifest"] = rel
            out.append(w)
    return expand_threads(out, default_thread_counts() if threads is None else threads)


def _subst(s, w, root):
    return (s.replace("{root}", root).replace("{build}", os.path.join(root, "build"))
            .replace("{cache}", os.path.join(root, "build", "bench", "cache", w["name"])))


def resolve(w, scale, root=benchlib.ROOT):
    """The workload at a scale, ready to run: absolute cwd and program path, placeholders
    replaced. Raises BenchError when the workload has scales but not this one."""
    scales = w.get("scales") or {}
    if scales and scale not in scales:
        raise BenchError(f"workload {w['name']} ({w.get('manifest')}) has no scale {scale!r} "
                         f"(it has: {', '.join(scales)})")
    sub = lambda xs: None if xs is None else [_subst(x, w, root) for x in xs]  # noqa: E731
    r = dict(w)
    r["scale"] = scale
    cwd = _subst(w.get("cwd") or ".", w, root)
    r["cwd"] = os.path.normpath(os.path.join(root, cwd))
    cmd = sub(w["cmd"]) + sub(scales.get(scale, []))
    if "/" in cmd[0] and not os.path.isabs(cmd[0]):
        cmd[0] = os.path.normpath(os.path.join(root, cmd[0]))
    r["argv"] = cmd
    r["latency_argv"] = cmd + sub(w["latency_args"]) if w.get("latency_args") else None
    for f in ("build", "prepare"):
        r[f] = sub(w.get(f))
    r["env"] = {k: _subst(v, w, root) for k, v in (w.get("env") or {}).items()}
    c = dict(w["check"])
    c["cmd"] = sub(c.get("cmd"))
    r["check"] = c
    r["cache_dir"] = os.path.join(root, "build", "bench", "cache", w["name"])
    return r


def select(workloads, spec):
    """Comma list of names (or group:NAME) -> the chosen workloads; unknown names: BenchError."""
    if not spec or not spec.strip():
        return list(workloads)
    by_name = {w["name"]: w for w in workloads}
    by_base = {}
    for w in workloads:
        if w.get("sweep"):
            by_base.setdefault(w["sweep"]["base"], []).append(w)
    out = []
    for tok in spec.replace(" ", ",").split(","):
        tok = tok.strip()
        if not tok:
            continue
        if tok.startswith("group:"):
            g = [w for w in workloads if w.get("group") == tok[6:]]
            if not g:
                raise BenchError(f"no workload in group {tok[6:]!r}")
            out.extend(w for w in g if w not in out)
        elif tok in by_name or tok in by_base:
            out.extend(w for w in by_base.get(tok, [by_name.get(tok)]) if w not in out)
        else:
            known = ", ".join(sorted(set(by_name) | set(by_base))) or "(none: the manifest is empty)"
            raise BenchError(f"unknown workload {tok!r} (known: {known})")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", action="append", metavar="PATH", help="file or folder (default bench/manifest)")
    ap.add_argument("--scale", default="default")
    ap.add_argument("--threads", metavar="LIST", help="thread counts of the sweeps (default: 1, CPUs, 4x CPUs)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    def rows():
        ws = load(args.manifest, parse_threads(args.threads) if args.threads else None)
        return [resolve(w, args.scale) for w in ws]
    return benchlib.list_cli("manifest", rows, args.json,
                             lambda r: f"{r['name']:24} {r.get('group', ''):10} {' '.join(r['argv'])}")


if __name__ == "__main__":
    sys.exit(main())
