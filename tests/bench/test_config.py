# Allocator registry, manifest loading and scripts/setup.py: the error paths name what is wrong.
import contextlib
import io
import json
import os
import re
import shlex
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import ROOT  # noqa: E402
import allocators  # noqa: E402
import manifest  # noqa: E402
from benchlib import BenchError  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "scripts"))
import setup  # noqa: E402  (scripts/setup.py, the installer)
# the Debian package itself (dpkg), not just a libjemalloc.so.2 somewhere: the test checks the
# package name and its dpkg version
JEMALLOC_PKG = setup.installed("libjemalloc2") and \
    bool(allocators.find_package_lib("libjemalloc2", r"/libjemalloc\.so\.2$", "libjemalloc.so.2"))


def quiet(fn, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = fn(*args)
    return rc, out.getvalue(), err.getvalue()


class Registry(unittest.TestCase):
    def test_glibc_is_the_system_malloc(self):
        a = allocators.resolve("glibc")
        self.assertEqual(len(a), 1)
        self.assertIsNone(a[0]["lib"])
        self.assertTrue(a[0]["version"])
        self.assertTrue(a[0]["expect"].endswith("libc.so.6"))

    @unittest.skipUnless(JEMALLOC_PKG, "Debian package libjemalloc2 not installed")
    def test_package_found_with_dpkg(self):
        a = allocators.resolve("jemalloc")[0]
        self.assertTrue(os.path.exists(a["lib"]))
        self.assertEqual(a["package"], "libjemalloc2")
        self.assertRegex(a["version"], r"^\d")
        self.assertEqual(len(a["sha256"]), 64)

    def test_external_by_path(self):
        libc = allocators.find_libc()
        a = allocators.resolve(f"glibc,mylibc={libc}")
        self.assertEqual(a[1]["name"], "mylibc")
        self.assertEqual(a[1]["kind"], "external")
        self.assertTrue(a[1]["version"].startswith("sha256:"))

    def test_unknown_name(self):
        with self.assertRaises(BenchError) as cm:
            allocators.resolve("glibc,hoardx")
        self.assertEqual(cm.exception.code, 2)
        self.assertIn("hoardx", str(cm.exception))

    def test_missing_library(self):
        with self.assertRaises(BenchError) as cm:
            allocators.resolve("fake=/nonexistent/libfake.so")
        self.assertEqual(cm.exception.code, 3)
        self.assertIn("/nonexistent/libfake.so", str(cm.exception))

    def test_not_a_library(self):
        with self.assertRaises(BenchError) as cm:
            allocators.resolve(f"fake={os.path.join(ROOT, 'Makefile')}")
        self.assertEqual(cm.exception.code, 3)

    def test_bad_spec(self):
        for spec in ("glibc,glibc", "a b=", "bad/name", "glibc=/x.so"):
            with self.assertRaises(BenchError):
                allocators.resolve(spec)

    def test_allocators_file(self):
        libc = allocators.find_libc()
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write(f"# comment\nsyslibc = {libc} 9.9\n\n")
        try:
            a = allocators.resolve("glibc,syslibc", [f.name])
            self.assertEqual((a[1]["lib"], a[1]["version"]), (libc, "9.9"))
            with open(f.name, "a") as g:
                g.write("nonsense line\n")
            with self.assertRaises(BenchError) as cm:
                allocators.resolve("glibc", [f.name])
            self.assertIn(":4:", str(cm.exception))
        finally:
            os.unlink(f.name)

    def test_variants_of_built_in_allocators(self):
        """`name = built-in [VAR=VALUE ...]`: the built-in's library with its own environment."""
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("glibc-tuned = glibc GLIBC_TUNABLES=glibc.malloc.arena_max:1 MALLOC_TOP_PAD_=0\n"
                    "libc-v = glibc 2.0-custom\n")
        self.addCleanup(os.unlink, f.name)
        a = allocators.resolve("glibc,glibc-tuned,libc-v", [f.name])
        self.assertEqual(a[1]["base"], "glibc")
        self.assertEqual(a[1]["env"], {"GLIBC_TUNABLES": "glibc.malloc.arena_max:1", "MALLOC_TOP_PAD_": "0"})
        self.assertEqual(a[1]["expect"], a[0]["expect"])
        self.assertEqual((a[2]["version"], a[2]["env"]), ("2.0-custom", {}))

    def test_variant_errors_name_the_token(self):
        for line, needle in (("v = glibc A=1 A=2", "A set twice"),
                             ("v = glibc LD_PRELOAD=/x.so", "LD_PRELOAD is the harness's"),
                             ("v = glibc A=1 loose", "'loose' is neither"),
                             ("v = glibc\nv = glibc", "v given twice")):
            with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
                f.write(line + "\n")
            self.addCleanup(os.unlink, f.name)
            with self.assertRaises(BenchError) as cm:
                allocators.resolve("v", [f.name])
            self.assertEqual(cm.exception.code, 2, line)
            self.assertIn(needle, str(cm.exception))

    def test_cli_exit_codes(self):
        self.assertEqual(quiet(allocators.main, ["--allocators", "glibc"])[0], 0)
        rc, _, err = quiet(allocators.main, ["--allocators", "nope"])
        self.assertEqual(rc, 2)
        self.assertIn("nope", err)


class Manifest(unittest.TestCase):
    def write(self, obj):
        d = tempfile.mkdtemp(prefix="tm-bench-man-")
        self.addCleanup(lambda: [os.unlink(os.path.join(d, n)) for n in os.listdir(d)] and os.rmdir(d))
        with open(os.path.join(d, "x.json"), "w") as f:
            f.write(obj if isinstance(obj, str) else json.dumps(obj))
        return d

    def test_readme_example_loads(self):
        w = {"name": "churn-small", "group": "synthetic", "description": "d", "build": ["make", "workloads"],
             "prepare": None, "cmd": ["build/workloads/churn-small", "--seed", "42"],
             "scales": {"default": [], "quick": ["--scale", "quick"], "tiny": ["--scale", "tiny"]},
             "latency_args": ["--latency"], "timeout": 120, "check": {"exit": 0, "stdout_regex": "^TMBENCH "}}
        ws = manifest.load([self.write({"workloads": [w]})])
        r = manifest.resolve(ws[0], "quick")
        self.assertEqual(r["argv"], [os.path.join(ROOT, "build/workloads/churn-small"), "--seed", "42",
                                     "--scale", "quick"])
        self.assertEqual(r["latency_argv"][-1], "--latency")
        self.assertEqual(r["cwd"], ROOT)

    def test_real_program_fields(self):
        w = {"name": "lua-x", "cmd": ["lua5.4", "{cache}/x.lua"], "prepare": ["sh", "-c", "cp a {cache}/"],
             "env": {"HOME": "{root}"}, "cwd": "{build}", "check": {"cmd": ["true"], "stdout_regex": "done"}}
        r = manifest.resolve(manifest.load([self.write({"workloads": [w]})])[0], "default")
        self.assertEqual(r["argv"], ["lua5.4", os.path.join(ROOT, "build/bench/cache/lua-x/x.lua")])
        self.assertEqual(r["env"]["HOME"], ROOT)
        self.assertEqual(r["cwd"], os.path.join(ROOT, "build"))
        self.assertIn("build/bench/cache/lua-x/", r["prepare"][2])

    def test_errors_name_the_problem(self):
        cases = [
            ("{", "cannot read"),
            ({"workloads": [{"name": "a"}]}, "workload a: `cmd`"),
            ({"workloads": [{"name": "a", "cmd": ["x"], "timeout": -1}]}, "timeout"),
            ({"workloads": [{"name": "a", "cmd": ["x"], "check": {"stdout_regex": "("}}]}, "stdout_regex"),
            ({"workloads": [{"name": "a", "cmd": ["x"], "check": {"exitt": 0}}]}, "exitt"),
            ({"workloads": [{"name": "a", "cmd": ["x"], "env": {"LD_PRELOAD": "y"}}]}, "LD_PRELOAD"),
            ({"workloads": [{"name": "a", "cmd": ["x"]}, {"name": "a", "cmd": ["y"]}]}, "already defined"),
        ]
        for obj, want in cases:
            with self.assertRaises(BenchError) as cm:
                manifest.load([self.write(obj)])
            self.assertIn(want, str(cm.exception))
            self.assertEqual(cm.exception.code, 2)

    def load_error(self, w):
        with self.assertRaises(BenchError) as cm:
            manifest.load([self.write({"workloads": [w]})])
        self.assertEqual(cm.exception.code, 2)
        return str(cm.exception)

    def test_misspelled_key_is_rejected_with_a_suggestion(self):
        # "chek" used to be ignored: the workload ran without its output check
        msg = self.load_error({"name": "a", "cmd": ["x"], "chek": {"stdout_regex": "^TMBENCH "}})
        self.assertIn("unknown key `chek` (did you mean `check`?)", msg)
        self.assertIn("x.json", msg)
        self.assertIn("workload a", msg)
        msg = self.load_error({"name": "a", "cmd": ["x"], "check": {"stdout_regexp": "^TMBENCH "}})
        self.assertIn("`check`", msg)
        self.assertIn("unknown key `stdout_regexp` (did you mean `stdout_regex`?)", msg)
        msg = self.load_error({"nmae": "a", "cmd": ["x"]})
        self.assertIn("unknown key `nmae` (did you mean `name`?)", msg)
        # nothing close: the known keys are listed
        msg = self.load_error({"name": "a", "cmd": ["x"], "zzzzzz": 1})
        self.assertIn("`zzzzzz`", msg)
        self.assertIn("known keys: ", msg)
        self.assertIn("threads", msg)
        # a removed key is an unknown key like any other
        self.assertIn("`multiprocess`", self.load_error({"name": "a", "cmd": ["x"], "multiprocess": True}))

    def test_threads(self):
        for ok in (1, 4, None):
            w = manifest.load([self.write({"workloads": [{"name": "a", "cmd": ["x"], "threads": ok}]})])[0]
            self.assertEqual(w["threads"], ok)
        self.assertIsNone(manifest.load([self.write({"workloads": [{"name": "a", "cmd": ["x"]}]})])[0]["threads"])
        for bad in (0, -1, "2", True, False, 1.5, [1]):
            self.assertIn("`threads` must be a positive integer",
                          self.load_error({"name": "a", "cmd": ["x"], "threads": bad}))

    def test_selection_and_scale(self):
        ws = manifest.load([self.write({"workloads": [
            {"name": "a", "group": "g1", "cmd": ["x"], "scales": {"default": []}},
            {"name": "b", "group": "g2", "cmd": ["y"]}]})])
        self.assertEqual([w["name"] for w in manifest.select(ws, "b,a")], ["b", "a"])
        self.assertEqual([w["name"] for w in manifest.select(ws, "group:g2")], ["b"])
        with self.assertRaises(BenchError) as cm:
            manifest.select(ws, "a,zz")
        self.assertIn("'zz'", str(cm.exception))
        with self.assertRaises(BenchError) as cm:
            manifest.resolve(ws[0], "quick")
        self.assertIn("no scale 'quick'", str(cm.exception))
        self.assertEqual(manifest.resolve(ws[1], "quick")["argv"], ["y"])

    def test_thread_sweeps(self):
        obj = {"workloads": [
            {"name": "pc", "group": "g", "cmd": ["x", "--threads", "{threads}"], "threads_factor": 2,
             "scales": {"default": [], "quick": ["--n", "{threads}0"]}},
            {"name": "one", "cmd": ["y", "--threads", "1"], "threads": 1}]}
        ws = manifest.load([self.write(obj)], threads=[1, 4])
        self.assertEqual([w["name"] for w in ws], ["pc@1", "pc@4", "one"])
        pc4 = ws[1]
        self.assertEqual(pc4["cmd"], ["x", "--threads", "4"])
        self.assertEqual(pc4["scales"]["quick"], ["--n", "40"])
        self.assertEqual(pc4["threads"], 8)  # threads_factor 2: T producers and T consumers
        self.assertEqual(pc4["sweep"], {"base": "pc", "threads": 4})
        self.assertEqual(ws[0]["threads"], 2)
        self.assertEqual(manifest.resolve(pc4, "quick")["argv"], ["x", "--threads", "4", "--n", "40"])
        self.assertNotIn("sweep", ws[2])
        # the plain name takes every count, NAME@T one; unknown counts are unknown names
        self.assertEqual([w["name"] for w in manifest.select(ws, "pc")], ["pc@1", "pc@4"])
        self.assertEqual([w["name"] for w in manifest.select(ws, "pc@4,one")], ["pc@4", "one"])
        self.assertEqual([w["name"] for w in manifest.select(ws, "group:g")], ["pc@1", "pc@4"])
        with self.assertRaises(BenchError) as cm:
            manifest.select(ws, "pc@2")
        self.assertIn("'pc@2'", str(cm.exception))
        # the default counts: 1, the CPUs, 4x the CPUs
        self.assertEqual(manifest.default_thread_counts(2), [1, 2, 8])
        self.assertEqual(manifest.default_thread_counts(1), [1, 4])
        self.assertEqual(manifest.parse_threads("8, 1,2,2"), [1, 2, 8])
        for bad in ("0", "x", "1,,-2", "", "2000"):
            with self.assertRaises(BenchError) as cm:
                manifest.parse_threads(bad)
            self.assertEqual(cm.exception.code, 2)
        # `threads` comes from the sweep; `threads_factor` only belongs in one
        self.assertIn("set by the sweep",
                      self.load_error({"name": "a", "cmd": ["x", "{threads}"], "threads": 2}))
        self.assertIn("`threads_factor`", self.load_error({"name": "a", "cmd": ["x"], "threads_factor": 2}))
        self.assertIn("`threads_factor`",
                      self.load_error({"name": "a", "cmd": ["x", "{threads}"], "threads_factor": 0}))

    def test_project_manifests_load(self):
        # whatever the workload engineers have committed must satisfy the schema
        ws = manifest.load()
        for w in ws:
            manifest.resolve(w, "default")

    def test_synthetic_threads_cover_the_command(self):
        # `threads` counts the threads really running: at least the --threads N a program is
        # given (prodcons runs N producers and N consumers)
        for w in manifest.load():
            if w["group"] in ("synthetic", "classic"):
                n = int(w["cmd"][w["cmd"].index("--threads") + 1])
                self.assertIsNotNone(w["threads"], w["name"])
                self.assertGreaterEqual(w["threads"], n, w["name"])


class Setup(unittest.TestCase):
    # The printed command lists every bench package missing on this machine, not only the
    # ones the test pretends are missing: parse it instead of expecting an exact line.
    def install_command(self, text):
        """-> the packages of the one `apt-get install -y --no-install-recommends ...` in text."""
        found = re.findall(r"apt-get install -y --no-install-recommends ([^\n&|;]+)", text)
        self.assertEqual(len(found), 1, f"expected one apt-get install command in:\n{text}")
        return shlex.split(found[0])

    def check_packages(self, pkgs, assumed):
        names = [p for p, _ in setup.PACKAGES]
        for p in assumed:
            self.assertIn(p, pkgs)
        for p in pkgs:
            self.assertIn(p, names, f"{p} is not a bench package")
            if p not in assumed:
                self.assertFalse(setup.installed(p), f"{p} is listed but installed")
        # and no missing package is left out (in the order of setup.PACKAGES)
        self.assertEqual(pkgs, [p for p in names if p in assumed or not setup.installed(p)])

    def test_non_root_prints_command_and_stops(self):
        rc, out, err = quiet(setup.main, ["--assume-missing", "hyperfine", "--assume-user"])
        self.assertEqual(rc, 3)
        self.check_packages(self.install_command(err), ["hyperfine"])
        self.assertIn("not root", err)

    def test_check_only(self):
        rc, out, err = quiet(setup.main, ["--check", "--assume-missing", "strace", "--assume-missing", "time"])
        self.assertEqual(rc, 3)
        self.check_packages(self.install_command(out), ["strace", "time"])
        self.assertIn("strace (", err)
        self.assertIn("time (", err)

    def test_unknown_package(self):
        self.assertEqual(quiet(setup.main, ["--assume-missing", "emacs"])[0], 2)

    def test_everything_present(self):
        missing = [p for p, _ in setup.PACKAGES if not setup.installed(p)]
        if missing:
            self.skipTest("not installed here: " + ", ".join(missing))
        self.assertEqual(quiet(setup.main, ["--check"])[0], 0)


if __name__ == "__main__":
    unittest.main()
