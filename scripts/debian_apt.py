"""Debian packages and source packages for the project's own set-up steps: the real workloads'
preparation (workloads/real/prepare.py) and the outside test suites (tests/outside/outside.py).

A library module, not a command. Apt(allow_install, log) installs missing packages, enables
deb-src entries when the apt sources have none, fetches source packages with `apt-get source`
and installs build dependencies. Whatever cannot be had here (not root, --no-install, apt-get
failing, no network) raises Unavailable, which callers turn into a SKIP or exit status 3.

Debian 12 keeps its apt sources in /etc/apt/sources.list.d/debian.sources (deb822): deb-src is
added to its Types lines. A classic sources.list gets sources.list.d/tinymalloc-deb-src.list
with its deb lines repeated as deb-src.
"""
import glob
import os
import shlex
import subprocess


class Unavailable(Exception):
    """A prerequisite cannot be had on this machine."""


def clean_env():
    """The environment of set-up commands: never under a preloaded allocator."""
    env = dict(os.environ)
    for k in ("LD_PRELOAD", "MALLOC_CONF", "TINYMALLOC_CONF", "PYTHONMALLOC"):
        env.pop(k, None)
    env["DEBIAN_FRONTEND"] = "noninteractive"
    env["LC_ALL"] = "C"
    return env


def installed(pkg):
    """Whether dpkg has the package installed (False without dpkg-query)."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    except OSError:
        return False
    return r.returncode == 0 and r.stdout.strip().endswith("install ok installed")


def deb_src_enabled():
    for f in glob.glob("/etc/apt/sources.list.d/*.sources"):
        for line in open(f, errors="replace"):
            if line.startswith("Types:") and "deb-src" in line.split():
                return True
    for f in ["/etc/apt/sources.list"] + glob.glob("/etc/apt/sources.list.d/*.list"):
        if os.path.exists(f):
            for line in open(f, errors="replace"):
                if line.strip().startswith("deb-src "):
                    return True
    return False


def _trees(dest, pkg):
    return sorted(d for d in glob.glob(os.path.join(dest, pkg + "-*")) if os.path.isdir(d))


class Apt:
    def __init__(self, allow_install, log=print):
        self.allow = allow_install
        self.log = log
        self.updated = False

    def _run(self, cmd, cwd=None):
        """Runs an apt command; Unavailable with its last lines when it fails."""
        self.log("$ " + " ".join(shlex.quote(c) for c in cmd) + (f"   (in {cwd})" if cwd else ""))
        p = subprocess.run(cmd, cwd=cwd, env=clean_env(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
        if p.returncode != 0:
            tail = "\n".join("    " + ln for ln in p.stdout.splitlines()[-10:])
            raise Unavailable(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
        return p.stdout

    def _require_root(self, what):
        if not self.allow:
            raise Unavailable(f"{what} is missing and --no-install was given")
        if os.geteuid() != 0:
            raise Unavailable(f"{what} is missing and installing it needs root")

    def update(self):
        if not self.updated:
            self._run(["apt-get", "update", "-qq"])
            self.updated = True

    @staticmethod
    def missing(pkgs):
        return [p for p in pkgs if not installed(p)]

    def install(self, pkgs):
        miss = self.missing(pkgs)
        if not miss:
            return
        self._require_root("Debian package(s) " + " ".join(miss))
        self.update()
        self._run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + miss)

    def enable_deb_src(self):
        if deb_src_enabled():
            return
        self._require_root("a deb-src entry in the apt sources")
        changed = False
        for f in glob.glob("/etc/apt/sources.list.d/*.sources"):
            lines = open(f).read().splitlines(keepends=True)
            new = ["Types: deb deb-src\n" if ln.startswith("Types:") and ln.split()[1:] == ["deb"] else ln
                   for ln in lines]
            if new != lines:
                self.log(f"enabling deb-src in {f}")
                with open(f, "w") as fh:
                    fh.writelines(new)
                changed = True
        if not changed and os.path.exists("/etc/apt/sources.list"):
            src = ["deb-src " + ln.strip()[4:] + "\n" for ln in open("/etc/apt/sources.list")
                   if ln.strip().startswith("deb ")]
            if src:
                path = "/etc/apt/sources.list.d/tinymalloc-deb-src.list"
                self.log(f"writing {path}")
                with open(path, "w") as fh:
                    fh.writelines(src)
                changed = True
        if not changed:
            raise Unavailable("no apt source entry found to enable deb-src for")
        self.updated = False

    def source(self, pkg, dest):
        """The unpacked source tree (Debian patches applied) of source package pkg under dest,
        fetched with `apt-get source` the first time."""
        trees = _trees(dest, pkg)
        if trees:
            return trees[-1]
        self.install(["dpkg-dev"])
        self.enable_deb_src()
        if not self.allow:
            raise Unavailable(f"source package {pkg} is missing and --no-install was given")
        self.update()
        os.makedirs(dest, exist_ok=True)
        self._run(["apt-get", "source", "-qq", pkg], cwd=dest)
        trees = _trees(dest, pkg)
        if not trees:
            raise Unavailable(f"apt-get source {pkg} left no {pkg}-* tree in {dest}")
        return trees[-1]

    def build_dep(self, pkg, tree):
        """apt-get build-dep pkg, unless dpkg-checkbuilddeps finds the tree's installed."""
        if subprocess.run(["dpkg-checkbuilddeps"], cwd=tree, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return
        self._require_root(f"the build dependencies of {pkg}")
        self.enable_deb_src()
        self.update()
        self._run(["apt-get", "build-dep", "-y", "-qq", pkg])
