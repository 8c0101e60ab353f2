#!/usr/bin/python3
"""The allocator registry of the bench harness.

Built-in names (default matrix: glibc tinymalloc jemalloc mimalloc tcmalloc tbbmalloc):
  glibc             the system malloc: nothing preloaded, malloc must resolve to libc
  tinymalloc        build/libtinymalloc.so of this tree (`make lib`); version = git commit
  jemalloc          Debian libjemalloc2
  mimalloc          Debian libmimalloc2.0
  tcmalloc          Debian libgoogle-perftools4 (libtcmalloc.so.4)
  tbbmalloc         oneTBB's scalable allocator, Debian libtbbmalloc2, preloaded through its
                    proxy (libtbbmalloc_proxy.so.2), which puts malloc and the rest of the API
                    on libtbbmalloc.so.2
  tcmalloc-minimal  Debian libtcmalloc-minimal4 (not in the default matrix)

Library paths of the packaged allocators come from `dpkg -L PACKAGE` (then `ldconfig -p`),
versions from `dpkg-query`. Any other allocator is given as NAME=/path/lib.so, on the command
line (`--allocators` / ALLOCATORS=) or in a file (`--allocators-file`), one per line:

    # name = path-or-built-in-name [version] [VAR=VALUE ...]
    hoard = /opt/hoard/lib/libhoard.so 3.13
    tm-nocache = tinymalloc TINYMALLOC_CONF=medium_cache:0
    jemalloc-bg = jemalloc MALLOC_CONF=background_thread:true

A line whose target is a built-in name is a *variant*: that allocator's library with its own
environment, set for the measured program only (beside LD_PRELOAD), and shown in the report.
A value cannot hold spaces or '#'.

Usage: bench/allocators.py [--allocators LIST] [--allocators-file FILE] [--json]
lists the resolved selection (name, version, library).
Exit status: 0 ok, 2 unknown allocator or bad spec, 3 a library is missing.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import BenchError, EXIT_MISSING, EXIT_USAGE  # noqa: E402

BUILTIN = {
    "glibc": {"kind": "system", "package": "libc6", "soname": "libc.so.6"},
    "tinymalloc": {"kind": "project", "path": "build/libtinymalloc.so"},
    "jemalloc": {"kind": "package", "package": "libjemalloc2", "pattern": r"/libjemalloc\.so\.2$",
                 "soname": "libjemalloc.so.2"},
    "mimalloc": {"kind": "package", "package": "libmimalloc2.0", "pattern": r"/libmimalloc\.so\.2$",
                 "soname": "libmimalloc.so.2"},
    "tcmalloc": {"kind": "package", "package": "libgoogle-perftools4", "pattern": r"/libtcmalloc\.so\.4$",
                 "soname": "libtcmalloc.so.4"},
    "tbbmalloc": {"kind": "package", "package": "libtbbmalloc2", "pattern": r"/libtbbmalloc_proxy\.so\.2$",
                  "soname": "libtbbmalloc_proxy.so.2"},
    "tcmalloc-minimal": {"kind": "package", "package": "libtcmalloc-minimal4",
                         "pattern": r"/libtcmalloc_minimal\.so\.4$", "soname": "libtcmalloc_minimal.so.4"},
}
DEFAULT = ["glibc", "tinymalloc", "jemalloc", "mimalloc", "tcmalloc", "tbbmalloc"]


def _run(argv):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return p.stdout if p.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def find_package_lib(package, pattern, soname):
    """The library file of an installed Debian package: `dpkg -L`, then `ldconfig -p`."""
    rx = re.compile(pattern)
    listing = _run(["dpkg", "-L", package])
    if not listing:
        arch = _run(["dpkg", "--print-architecture"]).strip()
        if arch:
            listing = _run(["dpkg", "-L", f"{package}:{arch}"])
    for line in listing.splitlines():
        line = line.strip()
        if rx.search(line) and os.path.exists(line):
            return line
    for line in _run(["ldconfig", "-p"]).splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and m.group(1) == soname and (os.uname().machine != "x86_64" or "x86-64" in m.group(2)):
            if os.path.exists(m.group(3)):
                return m.group(3)
    return None


def find_libc():
    for line in _run(["ldconfig", "-p"]).splitlines():
        m = re.match(r"\s*libc\.so\.6 \(([^)]*)\) => (\S+)", line)
        if m and (os.uname().machine != "x86_64" or "x86-64" in m.group(1)):
            return m.group(2)
    return None


def _is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def _finish(a):
    lib = a.get("lib")
    if lib:
        if re.search(r"[\s:]", lib):
            raise BenchError(f"allocator {a['name']}: library path {lib!r} has a space or colon, "
                             "which LD_PRELOAD cannot carry", EXIT_USAGE)
        if not os.path.exists(lib):
            raise BenchError(f"allocator {a['name']}: library {lib} not found", EXIT_MISSING)
        if not _is_elf(lib):
            raise BenchError(f"allocator {a['name']}: {lib} is not an ELF shared library", EXIT_MISSING)
        a["sha256"] = benchlib.sha256_file(lib)
        if not a.get("version"):
            a["version"] = "sha256:" + a["sha256"][:12]
    return a


def resolve_builtin(name, root=benchlib.ROOT):
    b = BUILTIN[name]
    a = {"name": name, "kind": b["kind"], "package": b.get("package"), "lib": None}
    if b["kind"] == "system":
        a["version"] = benchlib.dpkg_version("libc6") or benchlib.collect_env().get("glibc")
        a["expect"] = find_libc()
        return a
    if b["kind"] == "project":
        path = os.path.join(root, b["path"])
        if not os.path.exists(path):
            raise BenchError(f"allocator tinymalloc: library {path} not found (build it with `make lib`, "
                             "or leave tinymalloc out: ALLOCATORS=glibc,jemalloc,...)", EXIT_MISSING)
        a["lib"] = os.path.abspath(path)
        a["version"] = "git:" + (benchlib.git_commit(root, ["tinymalloc", "Makefile"]) or "unknown")
        return _finish(a)
    lib = find_package_lib(b["package"], b["pattern"], b["soname"])
    if not lib:
        raise BenchError(f"allocator {name}: library {b['soname']} of Debian package {b['package']} not found "
                         f"(install it: apt-get install {b['package']}; or run scripts/setup.py)", EXIT_MISSING)
    a["lib"] = lib
    a["version"] = benchlib.dpkg_version(b["package"])
    return _finish(a)


ENV_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_allocators_file(path):
    """NAME = TARGET [VERSION] [VAR=VALUE ...] lines (or NAME=TARGET); '#' starts a comment.
    -> {name: (target, version, env)}; TARGET is a library path or a built-in name."""
    out = {}
    try:
        text = benchlib.read_text(path, errors="strict")
    except OSError as e:
        raise BenchError(f"allocators file {path}: {e.strerror}", EXIT_USAGE)
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^([^=\s]+)\s*=\s*(\S+)((?:\s+\S+)*)$", line)
        if not m or not benchlib.NAME_RE.fullmatch(m.group(1)):
            raise BenchError(f"allocators file {path}:{n}: expected `name = /path/lib.so [version] [VAR=VALUE ...]`, "
                             f"got {raw!r}")
        name, target, rest = m.group(1), m.group(2), m.group(3).split()
        version, env = None, {}
        for i, tok in enumerate(rest):
            e = ENV_RE.match(tok)
            if e:
                if e.group(1) in env:
                    raise BenchError(f"allocators file {path}:{n}: {e.group(1)} set twice in {raw!r}")
                if e.group(1) in ("LD_PRELOAD", "TMBENCH_PROBE_FILE"):
                    raise BenchError(f"allocators file {path}:{n}: {e.group(1)} is the harness's to set")
                env[e.group(1)] = e.group(2)
            elif i == 0:
                version = tok
            else:
                raise BenchError(f"allocators file {path}:{n}: {tok!r} is neither the version (which comes "
                                 "right after the library) nor VAR=VALUE")
        if name in out:
            raise BenchError(f"allocators file {path}:{n}: allocator {name} given twice")
        out[name] = (target, version, env)
    return out


def parse_spec(spec):
    """'glibc,jemalloc,foo=/x/libfoo.so' -> [(name, path or None)]"""
    items = []
    for tok in (spec or "").replace(" ", ",").split(","):
        tok = tok.strip()
        if not tok:
            continue
        name, _, path = tok.partition("=")
        if not benchlib.NAME_RE.fullmatch(name):
            raise BenchError(f"bad allocator name {name!r} in {spec!r} (letters, digits, _.+- only)")
        if _ and not path:
            raise BenchError(f"allocator {name}: empty library path in {spec!r}")
        items.append((name, path or None))
    return items


def resolve(spec=None, files=(), root=benchlib.ROOT):
    """Resolve a selection to a list of allocator dicts (name, kind, lib, version, sha256, ...).

    spec: comma list of names and NAME=PATH; None means the default matrix plus every
    allocator of the files. Raises BenchError (code 2 for unknown names, 3 for missing libs)."""
    external = {}
    for f in files or ():
        external.update(read_allocators_file(f))
    if spec is None or not str(spec).strip():
        items = [(n, None) for n in DEFAULT] + [(n, None) for n in external if n not in DEFAULT]
    else:
        items = parse_spec(spec)
    seen, out = set(), []
    for name, path in items:
        if name in seen:
            raise BenchError(f"allocator {name} given twice")
        seen.add(name)
        version, env = None, {}
        if path is None and name in external:
            path, version, env = external[name]
        if path in BUILTIN:  # a variant of a built-in allocator
            a = dict(resolve_builtin(path, root), name=name, base=path, env=env)
            if version:
                a["version"] = version
            out.append(a)
        elif path is not None:
            if name == "glibc":
                raise BenchError("allocator name glibc is reserved for the system malloc")
            lib = os.path.abspath(os.path.join(root, path)) if not os.path.isabs(path) else path
            out.append(_finish({"name": name, "kind": "external", "package": None, "lib": lib,
                                "version": version, "env": env}))
        elif name in BUILTIN:
            out.append(resolve_builtin(name, root))
        else:
            known = ", ".join(list(BUILTIN) + sorted(external))
            raise BenchError(f"unknown allocator {name!r} (known: {known}; or give NAME=/path/lib.so)")
    if not out:
        raise BenchError("no allocator selected")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allocators", default=os.environ.get("ALLOCATORS") or None, metavar="LIST")
    ap.add_argument("--allocators-file", action="append", default=[], metavar="FILE")
    ap.add_argument("--json", action="store_true", help="print JSON")
    args = ap.parse_args(argv)
    return benchlib.list_cli(
        "allocators", lambda: resolve(args.allocators, args.allocators_file), args.json,
        lambda a: f"{a['name']:18} {a.get('version') or '?':28} "
                  f"{a.get('lib') or '(system malloc, ' + str(a.get('expect')) + ')'}")


if __name__ == "__main__":
    sys.exit(main())
