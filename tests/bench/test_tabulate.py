# Tabulation and merge on a recorded run (tests/bench/samples/run-mixed: fixture workloads under
# glibc and jemalloc, with a failing, a crashing and a static program).
import contextlib
import csv
import io
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import SAMPLES, load  # noqa: E402

tab = load("scripts/tabulate.py", "tm_tabulate")


def read(path):
    with open(path) as f:
        return f.read()


def quiet(fn, *args):
    # the scripts explain errors on stderr; keep that out of unittest's verbose lines
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)
merge = load("scripts/merge.py", "tm_merge")


class Tabulate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tm-bench-tab-")
        self.run = os.path.join(self.tmp, "run-mixed")
        shutil.copytree(os.path.join(SAMPLES, "run-mixed"), self.run)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def cells(self, summ):
        return {(c["workload"], c["allocator"]): c for c in summ["cells"]}

    def test_statuses_and_reasons(self):
        c = self.cells(tab.tabulate(self.run, plots=False))
        self.assertEqual(c[("fix", "glibc")]["status"], "ok")
        self.assertEqual(c[("multi", "jemalloc")]["status"], "ok")
        self.assertEqual(c[("failing", "glibc")]["status"], "FAIL")
        self.assertIn("exit status 1", c[("failing", "glibc")]["reason"])
        self.assertIn("SIGSEGV", c[("crash", "jemalloc")]["reason"])
        self.assertIn("no probe record", c[("static", "glibc")]["reason"])

    def test_failed_cells_have_no_figures(self):
        c = self.cells(tab.tabulate(self.run, plots=False))
        for wl in ("failing", "crash", "static"):
            for a in ("glibc", "jemalloc"):
                self.assertNotIn("time_median_s", c[(wl, a)])
                self.assertNotIn("rss_max_kb", c[(wl, a)])

    def test_figures_match_raw(self):
        c = self.cells(tab.tabulate(self.run, plots=False))
        times = []
        for r in (1, 2):
            with open(os.path.join(self.run, "raw", "fix", "jemalloc", f"time-{r}.json")) as f:
                times += json.load(f)["times"]
        self.assertEqual(len(times), 4)
        times.sort()
        fj, fg = c[("fix", "jemalloc")], c[("fix", "glibc")]
        self.assertAlmostEqual(fj["time_median_s"], (times[1] + times[2]) / 2)
        self.assertEqual(fj["runs"], 4)
        self.assertAlmostEqual(fj["ratio_glibc"], fj["time_median_s"] / fg["time_median_s"])
        self.assertAlmostEqual(fg["ratio_glibc"], 1.0)
        self.assertAlmostEqual(min(fj["ratio_best"], fg["ratio_best"]), 1.0)
        with open(os.path.join(self.run, "raw", "fix", "jemalloc", "strace.json")) as f:
            self.assertEqual(fj["mmap"], json.load(f)["oscalls"]["mmap"])
        self.assertEqual(fj["latency_ns"]["malloc"]["p99"], 80)
        self.assertEqual(fj["ops_per_sec"], 20000000)
        self.assertTrue(fj["rss_kb_samples"])
        self.assertGreater(fj["rss_max_kb"], 0)

    def test_summary_geomean(self):
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)
        jm = next(a for a in s["allocators"] if a["allocator"] == "jemalloc")
        want = (c[("fix", "jemalloc")]["ratio_glibc"] * c[("multi", "jemalloc")]["ratio_glibc"]) ** 0.5
        self.assertAlmostEqual(jm["geomean_ratio_glibc"], want)
        self.assertEqual((jm["ok"], jm["fail"], jm["n_ratio_glibc"]), (2, 3, 2))

    def test_outputs(self):
        tab.tabulate(self.run, plots=False)
        with open(os.path.join(self.run, "summary.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 10)
        fail = next(r for r in rows if r["workload"] == "crash" and r["allocator"] == "glibc")
        self.assertEqual((fail["status"], fail["time_median_s"]), ("FAIL", ""))
        self.assertEqual({r["host"] for r in rows}, {"vm"})
        rep = read(os.path.join(self.run, "report.md"))
        for part in ("## Environment", "## Summary", "## fix", "## multi", "## Failures", "**FAIL**: mem: killed by SIGSEGV",
                     "Latency (ns", "time vs glibc (geomean)", "THP enabled", "5.3.0-1"):
            self.assertIn(part, rep)

    def test_plots(self):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("python3-matplotlib not installed")
        tab.tabulate(self.run, plots=True)
        rep = read(os.path.join(self.run, "report.md"))
        for png in ("time_ratio.png", "rss_ratio.png", "mem_fix.png"):
            self.assertIn(f"(plots/{png})", rep)
            with open(os.path.join(self.run, "plots", png), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_incomplete_run(self):
        os.unlink(os.path.join(self.run, "raw", "fix", "glibc", "time-2.json"))
        c = self.cells(tab.tabulate(self.run, plots=False))
        self.assertEqual(c[("fix", "glibc")]["status"], "incomplete")
        self.assertEqual(c[("fix", "glibc")]["runs"], 2)

    def test_not_a_run(self):
        self.assertEqual(quiet(tab.main, [self.tmp]), 2)

    def test_merge_hosts(self):
        other = os.path.join(self.tmp, "run-other")
        shutil.copytree(self.run, other)
        env = json.loads(read(os.path.join(other, "env.json")))
        env["host"] = "second-host"
        with open(os.path.join(other, "env.json"), "w") as f:
            json.dump(env, f)
        out = os.path.join(self.tmp, "merged")
        s = merge.merge([self.run, other], out, plots=False)
        self.assertEqual({c["host"] for c in s["cells"]}, {"vm", "second-host"})
        self.assertEqual(len(s["allocators"]), 4)
        with open(os.path.join(out, "summary.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), 20)
        rep = read(os.path.join(out, "report.md"))
        self.assertIn("| host | allocator |", rep)
        self.assertIn("second-host", rep)

    def test_merge_refuses_duplicates(self):
        self.assertEqual(quiet(merge.main, [self.run, self.run, "--out", os.path.join(self.tmp, "m"), "--no-latest"]), 2)


if __name__ == "__main__":
    unittest.main()
