#!/usr/bin/python3
"""Install the Debian packages the bench harness needs (`make bench` runs this first).

Usage: scripts/setup.py [--parallel] [--check] [--dry-run]

Packages: the allocators compared (libjemalloc2, libmimalloc2.0, libgoogle-perftools4 for
tcmalloc, libtbbmalloc2 for oneTBB's allocator), the measuring tools (hyperfine, strace, time = GNU time), python3 with
python3-matplotlib for the plots, and gcc, libc6-dev, make, git to build the probe,
tinymalloc and the workloads.

As root it runs `apt-get install` for what is missing (and `apt-get update` first when the
package lists are empty or the install cannot find a package). As another user it prints
the exact apt-get command and stops: nothing is half-run.

  --parallel  the tools of `make bench-parallel` on this machine instead: GNU parallel, rsync,
              the ssh client and git (each host installs its own bench packages)
  --check     only report what is missing
  --dry-run   print the apt-get command that would run
  (for tests: --assume-missing PKG pretends PKG is absent, --assume-user pretends not root)

Exit status: 0 everything is installed (now); 2 usage error; 3 something is missing and
was not installed (not root, --check, --dry-run, or apt-get failed).
"""
import argparse
import os
import shlex
import subprocess
import sys

from debian_apt import installed  # dpkg's view of a package, shared with the set-up of the real workloads

PACKAGES = [
    ("libjemalloc2", "jemalloc"),
    ("libmimalloc2.0", "mimalloc"),
    ("libgoogle-perftools4", "tcmalloc"),
    ("libtbbmalloc2", "tbbmalloc (oneTBB)"),
    ("hyperfine", "timing"),
    ("strace", "syscall counts"),
    ("time", "GNU time: rusage of each run"),
    ("python3", "the harness"),
    ("python3-matplotlib", "plots"),
    ("gcc", "builds the probe and tinymalloc"),
    ("libc6-dev", "headers for the probe"),
    ("make", "builds"),
    ("git", "records the project commit"),
]
PARALLEL_PACKAGES = [
    ("parallel", "GNU parallel: runs the shards on the hosts"),
    ("rsync", "copies to and from the hosts"),
    ("openssh-client", "reaches the hosts"),
    ("git", "packs the commit the hosts run"),
]


def install_cmd(pkgs):
    return ["apt-get", "install", "-y", "--no-install-recommends", *pkgs]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallel", action="store_true", help="the tools of make bench-parallel instead")
    ap.add_argument("--check", action="store_true", help="only report what is missing")
    ap.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    ap.add_argument("--assume-missing", action="append", default=[], metavar="PKG", help=argparse.SUPPRESS)
    ap.add_argument("--assume-user", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    packages = PARALLEL_PACKAGES if args.parallel else PACKAGES
    names = [p for p, _ in packages]
    bad = [p for p in args.assume_missing if p not in names]
    if bad:
        print(f"setup: --assume-missing {bad[0]}: not one of the bench packages ({', '.join(names)})",
              file=sys.stderr)
        return 2
    missing = [p for p in names if p in args.assume_missing or not installed(p)]
    if not missing:
        print("setup: all bench packages are installed")
        return 0
    why = dict(packages)
    print("setup: missing Debian packages: " + ", ".join(f"{p} ({why[p]})" for p in missing), file=sys.stderr)
    cmd = install_cmd(missing)
    root = os.geteuid() == 0 and not args.assume_user
    if args.check or args.dry_run:
        print(("" if root else "sudo ") + shlex.join(cmd))
        return 3
    if not root:
        print("setup: not root, so nothing was installed. Run this, then `make bench` again:\n"
              f"  sudo apt-get update && sudo {shlex.join(cmd)}", file=sys.stderr)
        return 3
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lists = "/var/lib/apt/lists"
    fresh = os.path.isdir(lists) and any(n.endswith("_Packages") or "Packages" in n for n in os.listdir(lists))
    if not fresh:
        print("setup: apt-get update", flush=True)
        subprocess.run(["apt-get", "update"], env=env)
    print("setup: " + shlex.join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env).returncode
    if rc != 0 and fresh:
        print("setup: install failed; apt-get update and one more try", flush=True)
        subprocess.run(["apt-get", "update"], env=env)
        rc = subprocess.run(cmd, env=env).returncode
    still = [p for p in missing if not installed(p)]
    if rc != 0 or still:
        print(f"setup: apt-get failed (exit {rc}); still missing: {', '.join(still) or '-'}", file=sys.stderr)
        return 3
    print("setup: installed " + ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
