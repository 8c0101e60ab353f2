# scripts/compare.py on two copies of the recorded sample run, one of them altered.
import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SAMPLES  # noqa: E402
import compare  # noqa: E402


class Compare(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tm-bench-cmp-")
        self.a, self.b = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        for d in (self.a, self.b):
            shutil.copytree(os.path.join(SAMPLES, "run-mixed"), d)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def set_times(self, run, wl, alloc, centre, spread):
        for r in (1, 2):
            path = os.path.join(run, "raw", wl, alloc, f"time-{r}.json")
            with open(path) as f:
                rec = json.load(f)
            rec["times"] = [centre * (1 + spread * k) for k in ((-1, 1) if r == 1 else (-0.5, 0.5))]
            with open(path, "w") as f:
                json.dump(rec, f)

    def run_main(self, *extra):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            rc = compare.main([self.a, self.b, *extra])
        return rc, out.getvalue()

    def test_identical_runs_agree(self):
        rc, out = self.run_main()
        self.assertEqual(rc, 0)
        res = compare.compare(self.a, self.b)
        self.assertEqual(res["counts"]["time"]["agree"], 2)       # fix and multi: glibc / jemalloc
        self.assertEqual(res["counts"]["time"]["swapped_noise"] + res["counts"]["time"]["swapped_significant"], 0)
        self.assertNotIn("## Swapped pairs", out)

    def test_significant_swap_is_a_real_disagreement(self):
        self.set_times(self.a, "fix", "glibc", 0.020, 0.01)
        self.set_times(self.a, "fix", "jemalloc", 0.010, 0.01)
        self.set_times(self.b, "fix", "glibc", 0.010, 0.01)
        self.set_times(self.b, "fix", "jemalloc", 0.020, 0.01)
        rc, out = self.run_main("--json", os.path.join(self.tmp, "c.json"))
        self.assertEqual(rc, 1)
        self.assertIn("| fix | time | glibc / jemalloc |", out)
        self.assertIn("**real disagreement**", out)
        with open(os.path.join(self.tmp, "c.json")) as f:
            self.assertEqual(json.load(f)["counts"]["time"]["swapped_significant"], 1)

    def test_swap_within_the_noise_is_noise(self):
        self.set_times(self.a, "fix", "glibc", 0.020, 0.01)
        self.set_times(self.a, "fix", "jemalloc", 0.010, 0.01)     # significant in A
        self.set_times(self.b, "fix", "glibc", 0.0199, 0.3)
        self.set_times(self.b, "fix", "jemalloc", 0.0201, 0.3)     # swapped, but a tie in B
        rc, out = self.run_main()
        self.assertEqual(rc, 0)
        self.assertIn("| fix | time | glibc / jemalloc |", out)
        self.assertRegex(out, r"\| fix \| time \| glibc / jemalloc \|.*\| noise \|")

    def test_not_a_run(self):
        with contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(compare.main([self.a, self.tmp]), 2)


if __name__ == "__main__":
    unittest.main()
