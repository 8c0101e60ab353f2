# scripts/probe_table.py: the heap-error probes run through the bench runner (bench/run.py
# --runs 0), and the table made from the runner's raw records.
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import probe_table  # noqa: E402

BIN = os.path.join(ROOT, "build", "probes", "heap-probes")
LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
LIBM = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6")
             if os.path.exists(p)), None)
PROBES = "df-small,free-stack,malloc-max"


def quiet(fn, *args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = fn(*args)
    return rc, out.getvalue(), err.getvalue()



def read_text(path):
    with open(path) as f:
        return f.read()


def load_json(path):
    return json.loads(read_text(path))


@unittest.skipUnless(os.access(BIN, os.X_OK) and os.path.exists(LIB), "make lib build/probes/heap-probes first")
@unittest.skipUnless(os.path.exists("/usr/bin/time"), "GNU time (Debian time) not installed")
class ProbeTable(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tm-probe-table-")
        conf = os.path.join(cls.tmp, "alloc.conf")
        with open(conf, "w") as f:
            f.write("ghost = /nonexistent/libghost.so\n")
            if LIBM:  # a library that is no allocator: the runner's preload probe must refuse it
                f.write(f"notalloc = {LIBM}\n")
        sel = "glibc,tinymalloc,ghost" + (",notalloc" if LIBM else "")
        cls.rc, cls.out, cls.err = quiet(probe_table.main, [
            "--allocators", sel, "--allocators-file", conf, "--probes", PROBES, "--out", cls.tmp])
        mds = [f for f in os.listdir(cls.tmp) if f.endswith(".md")]
        cls.md = read_text(os.path.join(cls.tmp, mds[0])) if len(mds) == 1 else ""
        cls.run_dir = os.path.join(cls.tmp, mds[0][:-3]) if len(mds) == 1 else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_table_written(self):
        self.assertEqual(self.rc, 0, self.err)
        self.assertIn("| class | glibc | tinymalloc |", self.md)
        # tinymalloc stops all three; the row of each probe names its class per allocator
        self.assertRegex(self.md, r"\| detected \| \d \| 3 \|")
        self.assertIn("| df-small | free(p); free(p), 32 B | detected | detected |", self.md)
        self.assertIn("SIGABRT: tinymalloc: ", self.md)

    def test_runner_records(self):
        # the raw layout, plan and environment are the runner's, not the script's own
        self.assertTrue(self.run_dir)
        plan = load_json(os.path.join(self.run_dir, "plan.json"))
        self.assertEqual(plan["options"]["runs"], 0)
        self.assertEqual([w["name"] for w in plan["workloads"]], ["heap-probes"])
        self.assertEqual(plan["workloads"][0]["argv"][1:], PROBES.split(","))
        self.assertTrue({"time", "strace"}.isdisjoint(st["kind"] for st in plan["steps"]))
        env = load_json(os.path.join(self.run_dir, "env.json"))
        self.assertIn("kernel", env)
        rec = load_json(os.path.join(self.run_dir, "raw", "heap-probes", "tinymalloc", "mem-1.json"))
        self.assertEqual(rec["status"], "ok")
        self.assertTrue(any(lib.endswith("libtinymalloc.so") for lib in rec["probe"]["libs"]), rec["probe"])

    def test_missing_and_refused_allocators_are_named(self):
        self.assertIn("## Not run", self.md)
        self.assertRegex(self.md, r"- ghost: .*libghost\.so not found")
        if LIBM:
            self.assertRegex(self.md, r"- notalloc: malloc of pid \d+ served by .*libc")
            self.assertNotIn("| notalloc |", self.md)

    def test_usage_errors(self):
        rc, _, err = quiet(probe_table.main, ["--allocators", "glibc", "--probes", "no-such-probe",
                                              "--out", self.tmp])
        self.assertEqual(rc, 2)
        self.assertIn("no-such-probe", err)
        rc, _, err = quiet(probe_table.main, ["--allocators", "nosuchalloc", "--out", self.tmp])
        self.assertEqual(rc, 2)
        self.assertIn("nosuchalloc", err)
        rc, _, err = quiet(probe_table.main, ["--bin", os.path.join(self.tmp, "nope"), "--out", self.tmp])
        self.assertEqual(rc, 3)
        rc, _, err = quiet(probe_table.main, ["--allocators", "ghost", "--allocators-file",
                                              os.path.join(self.tmp, "alloc.conf"), "--out", self.tmp])
        self.assertEqual(rc, 1)
        self.assertIn("no allocator could be run", err)


if __name__ == "__main__":
    unittest.main()
