"""The allocator's profile mode (TINYMALLOC_CONF=profile:PATH) against a program with known
allocations (known_allocs.c): counts, peak live blocks (also across threads), blocks live at
exit, lifetimes, pooled big sizes, one file per process for fork and fork+exec, and the merge
of those files. Skipped while the allocator does not know the `profile` key."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from tuning import profile as P  # noqa: E402

LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
SRC = os.path.join(ROOT, "tests", "tuning", "known_allocs.c")


class ProfileMode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(LIB):
            raise unittest.SkipTest("build/libtinymalloc.so not built")
        cc = os.environ.get("CC") or shutil.which("cc")
        if not cc:
            raise unittest.SkipTest("no C compiler")
        cls.tmp = tempfile.mkdtemp(prefix="tm-profile-")
        exe = os.path.join(cls.tmp, "known_allocs")
        subprocess.run([cc, "-O0", "-fno-builtin", "-pthread", SRC, "-o", exe], check=True)
        pdir = os.path.join(cls.tmp, "prof")
        os.mkdir(pdir)
        env = dict(os.environ, LD_PRELOAD=LIB, TINYMALLOC_CONF=f"profile:{pdir}/p.%p.json")
        p = subprocess.run([exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if "ignoring 'profile:" in p.stderr:
            shutil.rmtree(cls.tmp)
            raise unittest.SkipTest("this build of tinymalloc has no profile mode yet")
        cls.proc = p
        cls.pids = {k: int(v) for v, k in ((m.group(2), m.group(1)) for m in
                                           re.finditer(r"(?m)^(pid|child|exec-child) (\d+)$", p.stdout))}
        cls.files = sorted(glob.glob(os.path.join(pdir, "p.*.json")))
        cls.profiles = {}
        for f in cls.files:
            prof = P.load_file(f)
            cls.profiles[prof.processes[0]["pid"]] = prof

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def row(self, who, size, pooled=False):
        prof = self.profiles[self.pids[who]]
        r = prof.rows.get((size, pooled))
        self.assertIsNotNone(r, f"no row for size {size} in the {who} profile")
        return r

    def test_00_ran(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertEqual(set(self.pids), {"pid", "child", "exec-child"}, self.proc.stdout)

    def test_one_file_per_process(self):
        self.assertEqual(len(self.files), 3, self.files)
        for who in ("pid", "child", "exec-child"):
            self.assertIn(self.pids[who], self.profiles, f"no profile of the {who} process")
            self.assertTrue(os.path.exists(self.profiles[self.pids[who]].source))
        for who in ("child", "exec-child"):
            self.assertEqual(self.profiles[self.pids[who]].processes[0]["ppid"], self.pids["pid"])
        self.assertTrue(self.profiles[self.pids["exec-child"]].processes[0]["exe"].endswith("known_allocs"))

    def test_all_live_at_once(self):
        r = self.row("pid", 777)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (1000, 1000, 0))

    def test_never_freed(self):
        r = self.row("pid", 1555)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (10, 10, 10))

    def test_short_lived(self):
        r = self.row("pid", 2333)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit, r.short_lived), (100, 1, 0, 100))
        self.assertLessEqual(r.lifetime_sum, 100)

    def test_lifetimes(self):
        r = self.row("pid", 3111)
        self.assertEqual((r.count, r.short_lived), (1, 0))
        self.assertIn(r.lifetime_sum, (199, 200, 201))
        r = self.row("pid", 3112)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (200, 200, 0))
        self.assertLessEqual(abs(r.lifetime_sum - sum(range(200))), 200)   # 200 - i for i = 1..200
        self.assertIn(r.short_lived, (63, 64, 65))

    def test_threads_peak(self):
        r = self.row("pid", 4444)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (1000, 1000, 0))

    def test_calloc_realloc_aligned(self):
        self.assertEqual(self.row("pid", 3000).count, 1)
        for s in (5000, 5100, 6000):
            self.assertEqual(self.row("pid", s).count, 1, s)
        self.assertEqual(self.row("pid", 6000).live_at_exit, 0)
        self.assertEqual(self.row("pid", 7000).count, 1)

    def test_pooled(self):
        r = self.row("pid", 131072, pooled=True)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (5, 5, 0))
        self.assertNotIn((100000, False), self.profiles[self.pids["pid"]].rows)

    def test_ticks(self):
        prof = self.profiles[self.pids["pid"]]
        known = 1000 + 10 + 100 + 1 + 200 + 1000 + 1 + 3 + 1 + 5
        self.assertGreaterEqual(prof.ticks, known)
        self.assertGreaterEqual(prof.total_count(), known)

    def test_children(self):
        r = self.row("child", 5555)
        self.assertEqual((r.count, r.live_at_exit), (42, 42))
        self.assertNotIn((5555, False), self.profiles[self.pids["pid"]].rows)
        r = self.row("exec-child", 6666)
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (7, 7, 7))
        self.assertNotIn((777, False), self.profiles[self.pids["exec-child"]].rows)   # a new image

    def test_merge(self):
        prof, files = P.load([os.path.dirname(self.files[0])])
        self.assertEqual(len(prof.processes), 3)
        self.assertEqual(prof.rows[(6666, False)].count, 7)
        self.assertGreaterEqual(prof.rows[(5555, False)].count, 42)


if __name__ == "__main__":
    unittest.main()
