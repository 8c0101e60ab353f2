#!/usr/bin/python3
"""Prepare the real workloads of the tinymalloc bench: install Debian packages, fetch and build
Debian source packages, generate inputs. Everything fetched, built or generated goes under
cache/real/ (ignored by git). Run once; the bench harness only runs and checks.

usage: workloads/real/prepare.py [--all | NAME...] [--force] [--list] [--no-install]

  NAME...       prepare these workloads (see --list); several workloads share one step
                (neovim-build and neovim-tu share the neovim source and build)
  --all         prepare every workload (the default when no NAME is given)
  --force       redo steps that are already done (their stamps are ignored)
  --list        print the workload names and what each prepares, then exit
  --no-install  never call apt-get: fail (exit 3) when a package or source is missing

Idempotent: a finished step leaves a stamp (cache/real/<step>/.prepared) holding the recipe
version; it is skipped while the stamp matches and its outputs exist.

Needs root for apt-get (packages, `apt-get build-dep`, and enabling deb-src entries when the
apt sources have none). Debian 12 keeps them in /etc/apt/sources.list.d/debian.sources
(deb822: `deb-src` is added to its Types lines); a classic sources.list gets a
sources.list.d/tinymalloc-deb-src.list with the deb lines repeated as deb-src.

Exit status:
  0  every requested workload is prepared
  1  a step failed (its output is shown; the stamp is not written)
  2  usage error (unknown workload name, bad option)
  3  a prerequisite cannot be had here: not root and packages are missing, --no-install
     and something is missing, or apt-get cannot install/fetch (the tests SKIP on this)
"""
import argparse
import fcntl
import glob
import json
import os
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, "cache", "real")
HERE = os.path.join(ROOT, "workloads", "real")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import gen_inputs  # noqa: E402  (input generators: sqlite, gs, z3)
from debian_apt import Apt, Unavailable, clean_env, installed  # noqa: E402  (a prerequisite cannot be had here: exit 3)

SCALES = ("default", "quick", "tiny")




class StepFailed(Exception):
    """A preparation step failed (exit 1)."""


def log(msg):
    print(f"prepare-real: {msg}", flush=True)


def run(cmd, cwd=None, env=None, quiet=False, unavailable_on_fail=False):
    log("$ " + " ".join(shlex.quote(c) for c in cmd) + (f"   (in {os.path.relpath(cwd, ROOT)})" if cwd else ""))
    p = subprocess.run(cmd, cwd=cwd, env=env or clean_env(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, errors="replace")
    if p.returncode != 0:
        tail = "\n".join(p.stdout.splitlines()[-40:])
        msg = f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}"
        raise (Unavailable if unavailable_on_fail else StepFailed)(msg)
    if not quiet and p.stdout.strip():
        for line in p.stdout.splitlines()[-5:]:
            print("    " + line)
    return p.stdout


# ---- steps -------------------------------------------------------------------------------
class Step:
    name = ""
    version = 1
    packages = []

    def __init__(self, apt):
        self.apt = apt
        self.dir = os.path.join(CACHE, self.name)

    def stamp_path(self):
        return os.path.join(self.dir, ".prepared")

    def done(self):
        try:
            return json.load(open(self.stamp_path())).get("version") == self.version and self.outputs_ok()
        except (OSError, ValueError):
            return False

    def outputs_ok(self):
        return True

    def prepare(self, force):
        if not force and self.done():
            log(f"{self.name}: already prepared")
            return
        os.makedirs(self.dir, exist_ok=True)
        if os.path.exists(self.stamp_path()):
            os.unlink(self.stamp_path())
        self.apt.install(self.packages)
        self.build()
        if not self.outputs_ok():
            raise StepFailed(f"{self.name}: outputs missing after preparation")
        with open(self.stamp_path(), "w") as fh:
            json.dump({"version": self.version}, fh)
        log(f"{self.name}: prepared")

    def build(self):
        pass


class ScriptStep(Step):
    """An interpreter of a Debian package running our script: preparing runs it at the tiny and
    quick scales, so that a checksum this interpreter computes differently fails here."""
    interpreter = script = ""

    def build(self):
        for s in ("tiny", "quick"):
            run([self.interpreter, os.path.join(HERE, self.script), "--scale", s], quiet=True)


class LuaStep(ScriptStep):
    name = "lua"
    packages = ["lua5.4"]
    interpreter, script = "/usr/bin/lua5.4", "lua/churn.lua"


class PythonStep(Step):
    name = "python"
    packages = ["python3"]

    def build(self):
        env = clean_env()
        env["PYTHONMALLOC"] = "malloc"
        run(["/usr/bin/python3", os.path.join(HERE, "python", "churn.py"), "--scale", "tiny"], env=env,
            quiet=True)


class SqliteStep(Step):
    name = "sqlite"
    packages = ["sqlite3"]
    version = 1

    def outputs_ok(self):
        return all(os.path.exists(os.path.join(self.dir, f"{s}.sql")) and
                   os.path.exists(os.path.join(self.dir, f"{s}.expected")) for s in SCALES)

    def build(self):
        for s in SCALES:
            gen_inputs.write_sqlite(self.dir, s)


class GhostscriptStep(Step):
    name = "ghostscript"
    packages = ["ghostscript"]
    version = 1

    def outputs_ok(self):
        return all(os.path.exists(os.path.join(self.dir, f"{s}.ps")) and
                   os.path.exists(os.path.join(self.dir, f"{s}.expected")) for s in SCALES)

    def build(self):
        for s in SCALES:
            ps = gen_inputs.write_postscript(self.dir, s)
            # Reference rendering, made here without any preloaded allocator.
            out = run(["bash", "-c", 'set -o pipefail; gs -q -dSAFER -dBATCH -dNOPAUSE '
                       + gen_inputs.GS_ARGS + ' -sOutputFile=- "$1" | md5sum', "gs", ps], quiet=True)
            with open(os.path.join(self.dir, f"{s}.expected"), "w") as fh:
                fh.write(out.split()[0] + "\n")


class Z3Step(Step):
    name = "z3"
    packages = ["z3"]
    version = 1

    def outputs_ok(self):
        return all(os.path.exists(os.path.join(self.dir, f"{s}.smt2")) and
                   os.path.exists(os.path.join(self.dir, f"{s}.expected")) for s in SCALES)

    def build(self):
        for s in SCALES:
            gen_inputs.write_z3(self.dir, s)


class RedisStep(Step):
    name = "redis"
    # redis-tools: redis-benchmark (client, not preloaded); build-essential: make, cc.
    packages = ["redis-tools", "build-essential", "dpkg-dev"]
    version = 1

    def server(self):
        trees = sorted(d for d in glob.glob(os.path.join(self.dir, "redis-*")) if os.path.isdir(d))
        return os.path.join(trees[-1], "src", "redis-server") if trees else None

    def outputs_ok(self):
        s = self.server()
        return bool(s) and os.access(s, os.X_OK)

    def build(self):
        tree = self.apt.source("redis", self.dir)
        # Debian builds redis against jemalloc (USE_SYSTEM_JEMALLOC=yes) and uses its extended
        # API; MALLOC=libc makes zmalloc call plain malloc/free/malloc_usable_size.
        run(["make", f"-j{os.cpu_count() or 2}", "MALLOC=libc", "BUILD_TLS=no", "USE_SYSTEMD=no",
             "redis-server"], cwd=os.path.join(tree, "src"), quiet=True)
        out = run(["ldd", os.path.join(tree, "src", "redis-server")], quiet=True)
        if "jemalloc" in out or "tcmalloc" in out:
            raise StepFailed("redis-server is still linked to an allocator library:\n" + out)


class NeovimStep(Step):
    """Debian's neovim source, configured like debian/rules (plus ENABLE_LTO=OFF) in two build
    trees: build/ (cleaned and rebuilt by neovim-build) and build-tu/ (fully built once; its
    generated headers and compile_commands.json serve neovim-tu)."""
    name = "neovim"
    packages = ["ninja-build", "cmake", "dpkg-dev"]
    version = 2
    TU_COUNT = {"default": 10, "quick": 1, "tiny": 1}

    def tree(self):
        trees = sorted(d for d in glob.glob(os.path.join(self.dir, "neovim-*")) if os.path.isdir(d))
        return trees[-1] if trees else None

    def outputs_ok(self):
        return (os.access(os.path.join(self.dir, "build", "bin", "nvim"), os.X_OK)
                and os.access(os.path.join(self.dir, "build-tu", "bin", "nvim"), os.X_OK)
                and all(os.path.exists(os.path.join(self.dir, f"tu-{s}.sh")) for s in SCALES))

    def flags(self, tree):
        env = clean_env()
        env["DEB_BUILD_MAINT_OPTIONS"] = "hardening=+all"

        def get(v):
            return subprocess.run(["dpkg-buildflags", "--get", v], env=env, cwd=tree, text=True,
                                  stdout=subprocess.PIPE, check=True).stdout.strip()
        # As debian/rules: FORTIFY_SOURCE=1 (old-style VLAs), CPPFLAGS folded into CFLAGS.
        cpp = get("CPPFLAGS").replace("_FORTIFY_SOURCE=2", "_FORTIFY_SOURCE=1")
        env["CFLAGS"] = f"{get('CFLAGS')} {cpp} -DDISABLE_LOG -fno-strict-aliasing"
        env["CXXFLAGS"] = f"{get('CXXFLAGS')} {cpp}"
        env["LDFLAGS"] = get("LDFLAGS")
        return env

    def configure(self, tree, bdir):
        env = self.flags(tree)
        multiarch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], text=True,
                                   stdout=subprocess.PIPE, check=True).stdout.strip()
        luajit = installed("luajit")
        if os.path.exists(os.path.join(bdir, "build.ninja")):
            return
        run(["cmake", "-S", tree, "-B", bdir, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
             "-DBUSTED_OUTPUT_TYPE=nvim", f"-DPREFER_LUA={'OFF' if luajit else 'ON'}",
             f"-DLIBLUV_LIBRARY:FILEPATH=/usr/lib/{multiarch}/lua/5.1/luv.so",
             "-DLIBLUV_INCLUDE_DIR:PATH=/usr/include/lua5.1", f"-DCOMPILE_LUA={'OFF' if luajit else 'ON'}",
             "-DENABLE_LTO=OFF", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"], cwd=tree, env=env, quiet=True)

    def build(self):
        tree = self.apt.source("neovim", self.dir)
        self.apt.build_dep("neovim", tree)
        jobs = f"-j{os.cpu_count() or 2}"
        # build/ is what neovim/build.sh cleans and rebuilds: wait for a running one (its lock)
        with open(os.path.join(self.dir, "build.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for b in ("build", "build-tu"):
                bdir = os.path.join(self.dir, b)
                self.configure(tree, bdir)
                run(["ninja", jobs, "-C", bdir], quiet=True)
        nvim = os.path.join(self.dir, "build", "bin", "nvim")
        out = run([nvim, "--headless", "-u", "NONE", "-c", "lua io.stdout:write(1+1)", "-c", "q"], quiet=True)
        if out.strip() != "2":
            raise StepFailed(f"built nvim printed {out!r}, expected '2'")
        self.write_tu_commands()

    def write_tu_commands(self):
        """The largest translation units of the nvim target, by source size: a fixed list."""
        bdir = os.path.join(self.dir, "build-tu")
        db = json.load(open(os.path.join(bdir, "compile_commands.json")))
        units = [e for e in db if "/nvim.dir/" in e["command"] and e["file"].endswith(".c")]
        units.sort(key=lambda e: (-os.path.getsize(e["file"]), e["file"]))
        out = {}
        for s, n in self.TU_COUNT.items():
            pick = units[:n] if s != "tiny" else [units[len(units) // 2]]  # tiny: the median unit
            cmds = []
            for e in pick:
                argv = shlex.split(e["command"])
                i = argv.index("-o")
                argv[i + 1] = "@OUT@/" + os.path.basename(argv[i + 1])
                cmds.append({"directory": e["directory"], "file": e["file"], "argv": argv})
            out[s] = cmds
        with open(os.path.join(self.dir, "tu-commands.json"), "w") as fh:
            json.dump(out, fh, indent=1)
        for s, cmds in out.items():
            write_tu_script(os.path.join(self.dir, f"tu-{s}.sh"), "neovim-tu", cmds)


def write_tu_script(path, wl, cmds):
    """What neovim/tu.sh runs: OUT=<scratch dir> bash -e tu-S.sh; cmds: [{directory, argv}],
    the object file named @OUT@/NAME in argv."""
    with open(path, "w") as fh:
        fh.write(f"# generated by workloads/real/prepare.py: the {wl} commands\n")
        for c in cmds:
            argv = " ".join('"$OUT"/' + shlex.quote(a[6:]) if a.startswith("@OUT@/") else shlex.quote(a)
                            for a in c["argv"])
            fh.write(f"cd {shlex.quote(c['directory'])}\n{argv}\n")


class ClangStep(Step):
    """neovim-tu's translation units and commands, compiled by Debian's clang 14 instead of gcc.
    gcc's -Wsuggest-attribute=... warnings are left out (clang does not know them); every other
    flag, -O2 included, is the recorded one."""
    name = "clang"
    packages = ["clang-14"]
    version = 1
    CLANG = "/usr/bin/clang-14"

    def outputs_ok(self):
        return all(os.path.exists(os.path.join(self.dir, f"tu-{s}.sh")) for s in SCALES)

    def build(self):
        nv = NeovimStep(self.apt)
        nv.prepare(False)
        with open(os.path.join(nv.dir, "tu-commands.json")) as fh:
            units = json.load(fh)
        for s, cmds in units.items():
            write_tu_script(os.path.join(self.dir, f"tu-{s}.sh"), "clang-tu",
                            [dict(c, argv=[self.CLANG] + [a for a in c["argv"][1:]
                                                          if not a.startswith("-Wsuggest-attribute")])
                             for c in cmds])
        # one compile now, so that a flag clang refuses fails here and not in the bench
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            env = clean_env()
            env["OUT"] = tmp
            run(["bash", "-e", os.path.join(self.dir, "tu-tiny.sh")], env=env, quiet=True)
            if not glob.glob(os.path.join(tmp, "*.o")):
                raise StepFailed("clang left no object file for the tiny unit")


class RubyStep(ScriptStep):
    name = "ruby"
    packages = ["ruby3.1"]
    interpreter, script = "/usr/bin/ruby3.1", "ruby/churn.rb"


class RocksdbStep(Step):
    """Debian's db_bench (rocksdb-tools, linked to librocksdb without an allocator of its own)."""
    name = "rocksdb"
    packages = ["rocksdb-tools"]

    def outputs_ok(self):
        return os.access("/usr/bin/db_bench", os.X_OK)


class PerlStep(ScriptStep):
    name = "perl"
    packages = ["perl"]
    interpreter, script = "/usr/bin/perl", "perl/churn.pl"


STEPS = {c.name: c for c in (LuaStep, PythonStep, SqliteStep, GhostscriptStep, Z3Step, RedisStep,
                             NeovimStep, ClangStep, RubyStep, PerlStep, RocksdbStep)}
# workload name (bench/manifest/real.json) -> preparation step
WORKLOADS = {
    "lua": "lua",
    "python": "python",
    "sqlite": "sqlite",
    "ghostscript": "ghostscript",
    "z3": "z3",
    "redis": "redis",
    "neovim-build": "neovim",
    "neovim-tu": "neovim",
    "clang-tu": "clang",
    "ruby": "ruby",
    "perl": "perl",
    "rocksdb": "rocksdb",
}


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="workloads/real/prepare.py", description=__doc__.split("\n\n")[0],
        epilog="Exit status: 0 prepared, 1 a step failed, 2 usage error, 3 prerequisite unavailable "
               "(not root, --no-install, or apt-get failed).")
    ap.add_argument("names", nargs="*", metavar="NAME", help="workloads to prepare: " + ", ".join(WORKLOADS))
    ap.add_argument("--all", action="store_true", help="prepare every workload (default without NAME)")
    ap.add_argument("--force", action="store_true", help="redo steps already done")
    ap.add_argument("--list", action="store_true", help="list workloads and their steps")
    ap.add_argument("--no-install", action="store_true", help="never call apt-get")
    args = ap.parse_args(argv)
    if args.list:
        for w, s in WORKLOADS.items():
            st = STEPS[s](Apt(False, log))
            print(f"{w:14} step {s:12} {'prepared' if st.done() else 'not prepared'}")
        return 0
    unknown = [n for n in args.names if n not in WORKLOADS]
    if unknown:
        ap.print_usage(sys.stderr)
        print(f"unknown workload(s): {' '.join(unknown)}; known: {' '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    names = list(WORKLOADS) if args.all or not args.names else args.names
    steps = []
    for n in names:
        if WORKLOADS[n] not in steps:
            steps.append(WORKLOADS[n])
    apt = Apt(not args.no_install, log)
    status = 0
    for s in steps:
        try:
            STEPS[s](apt).prepare(args.force)
        except Unavailable as e:
            print(f"prepare-real: {s}: unavailable: {e}", file=sys.stderr)
            status = max(status, 3) if status != 1 else 1
        except StepFailed as e:
            print(f"prepare-real: {s}: FAILED: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
