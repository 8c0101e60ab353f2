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
from common import SAMPLES  # noqa: E402

import tabulate as tab  # noqa: E402


def read(path):
    with open(path) as f:
        return f.read()


def quiet(fn, *args):
    # the scripts explain errors on stderr; keep that out of unittest's verbose lines
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)
import merge  # noqa: E402


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
        self.assertEqual((jm["ok"], jm["fail"], jm["n_common"]), (2, 3, 2))
        self.assertEqual([x["workload"] for x in jm["left_out"]], ["failing", "crash", "static"])
        lo, hi = jm["geomean_ratio_glibc_ci"]
        self.assertLessEqual(lo, jm["geomean_ratio_glibc"])
        self.assertGreaterEqual(hi, jm["geomean_ratio_glibc"])

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
                     "Latency (ns", "time vs glibc (geomean, 95 % CI)", "THP enabled", "5.3.0-1"):
            self.assertIn(part, rep)

    def rewrite(self, wl, alloc, name, run=None, **fields):
        path = os.path.join(run or self.run, "raw", wl, alloc, name)
        with open(path) as f:
            rec = json.load(f)
        rec.update(fields)
        with open(path, "w") as f:
            json.dump(rec, f)

    def set_times(self, wl, alloc, centre, spread, run=None):
        for r in (1, 2):
            self.rewrite(wl, alloc, f"time-{r}.json", run=run,
                         times=[centre * (1 + spread * k) for k in ((-1, 1) if r == 1 else (-0.5, 0.5))])

    def test_clear_win_and_tie(self):
        self.set_times("fix", "glibc", 0.020, 0.01)
        self.set_times("fix", "jemalloc", 0.010, 0.01)      # clearly faster
        self.set_times("multi", "glibc", 0.020, 0.3)
        self.set_times("multi", "jemalloc", 0.019, 0.3)     # within the noise: a tie
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)
        self.assertEqual(c[("fix", "jemalloc")]["time_verdict"], "clear")
        self.assertLess(c[("fix", "jemalloc")]["ratio_glibc_ci"][1], 1.0)
        self.assertEqual(c[("multi", "jemalloc")]["time_verdict"], "tie")
        self.assertEqual(c[("multi", "glibc")]["time_verdict"], "tie")
        jm = next(a for a in s["allocators"] if a["allocator"] == "jemalloc")
        self.assertEqual((jm["time_verdict_clear"], jm["time_verdict_tie"]), (1, 1))
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("| fix | **jemalloc** |", rep)
        self.assertIn("| multi | tie: jemalloc, glibc |", rep)

    def test_focus_against_best_peer(self):
        self.set_times("fix", "glibc", 0.020, 0.01)
        self.set_times("fix", "jemalloc", 0.010, 0.01)      # clearly ahead of its only peer
        self.set_times("multi", "glibc", 0.020, 0.3)
        self.set_times("multi", "jemalloc", 0.019, 0.3)     # within the noise
        s = tab.tabulate(self.run, plots=False, focus="jemalloc")
        c = self.cells(s)
        fj, fg = c[("fix", "jemalloc")], c[("fix", "glibc")]
        self.assertEqual((fj["peer"], fg["peer"]), ("glibc", "jemalloc"))
        self.assertAlmostEqual(fj["ratio_peer"], 0.5)
        self.assertAlmostEqual(fg["ratio_peer"], 2.0)
        self.assertLess(fj["ratio_peer_ci"][1], 1.0)
        self.assertAlmostEqual(fj["ratio_best"], 1.0)      # what the lead replaces
        mj = c[("multi", "jemalloc")]
        self.assertLess(mj["ratio_peer_ci"][0], 1.0)
        self.assertGreater(mj["ratio_peer_ci"][1], 1.0)
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("jemalloc against the best other allocator", rep)
        self.assertRegex(rep, r"\| fix \| 0\.50x \([0-9.]+-[0-9.]+\) \| glibc \| \*\*ahead\*\* \|")
        self.assertRegex(rep, r"\| multi \| 0\.95x \([0-9.]+-[0-9.]+\) \| glibc \| tie \|")
        # the geometric mean of those ratios, with its interval, in the summary and the report
        jm = next(a for a in s["allocators"] if a["allocator"] == "jemalloc")
        gl = next(a for a in s["allocators"] if a["allocator"] == "glibc")
        want = (fj["ratio_peer"] * mj["ratio_peer"]) ** 0.5
        self.assertAlmostEqual(jm["geomean_ratio_peer"], want)
        self.assertAlmostEqual(gl["geomean_ratio_peer"], 1 / want)
        lo, hi = jm["geomean_ratio_peer_ci"]
        self.assertLessEqual(lo, want)
        self.assertGreaterEqual(hi, want)
        self.assertIsNotNone(jm["geomean_rss_ratio_peer"])
        self.assertRegex(rep, r"Over the 2 workloads where every allocator passed, the geometric mean of "
                              r"jemalloc's ratios to the best peer \(95 % CI\): time 0\.69x \([0-9.]+-[0-9.]+\), "
                              r"peak RSS [0-9.]+x \([0-9.]+-[0-9.]+\)\.")
        with open(os.path.join(self.run, "summary.csv")) as f:
            row = next(r for r in csv.DictReader(f) if (r["workload"], r["allocator"]) == ("fix", "jemalloc"))
        self.assertEqual((row["peer"], float(row["ratio_peer"])), ("glibc", 0.5))
        # without the focus allocator in the run, no such section
        tab.tabulate(self.run, plots=False, focus="tinymalloc")
        self.assertNotIn("against the best other allocator", read(os.path.join(self.run, "report.md")))

    def test_geomeans_over_workloads_every_allocator_passed(self):
        self.rewrite("fix", "jemalloc", "time-2.json", status="fail", reason="output does not match")
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)
        for a in s["allocators"]:
            self.assertEqual(a["n_common"], 1)
            self.assertEqual(a["left_out"][0], {"workload": "fix", "allocators": ["jemalloc"]})
        gl = next(a for a in s["allocators"] if a["allocator"] == "glibc")
        self.assertAlmostEqual(gl["geomean_ratio_best"], c[("multi", "glibc")]["ratio_best"])
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("left out: fix (jemalloc did not pass)", rep)

    def test_program_figures_are_tabulated(self):
        base = {"ops": 20000, "seconds": 0.001, "ops_per_sec": 20000000}
        self.rewrite("fix", "glibc", "mem-1.json", tmbench=dict(base, rss_idle_kb=2048, final_rss_kb=100))
        self.rewrite("fix", "glibc", "mem-2.json", tmbench=dict(base, rss_idle_kb=4096, final_rss_kb=300))
        self.rewrite("fix", "jemalloc", "mem-1.json", tmbench=dict(base, rss_idle_kb=512, tag=True))
        c = self.cells(tab.tabulate(self.run, plots=False))
        self.assertEqual(c[("fix", "glibc")]["extras"], {"final_rss_kb": 200, "rss_idle_kb": 3072})
        self.assertEqual(c[("fix", "jemalloc")]["extras"], {"rss_idle_kb": 512})  # not a boolean
        self.assertEqual(c[("fix", "jemalloc")]["extras_runs"], {"rss_idle_kb": 1})
        self.assertNotIn("extras", c[("multi", "glibc")])  # only the common fields
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("| allocator | `final_rss_kb` | `rss_idle_kb` |", rep)
        self.assertIn("| glibc | 200 KiB | 3.0 MiB |", rep)
        self.assertIn("| jemalloc | - | 512 KiB (n=1) |", rep)

    def test_commands_read_relative_to_the_recorded_checkout(self):
        # a run recorded in another checkout shows its programs as it did there
        path = os.path.join(self.run, "plan.json")
        with open(path) as f:
            plan = json.load(f)
        for w in plan["workloads"]:
            if w["name"] == "fix":
                w["cwd"] = "/elsewhere/checkout"
                w["argv"] = ["/elsewhere/checkout/build/workloads/fx", "--scale", "0.1", "/tmp/bt/out"]
        with open(path, "w") as f:
            json.dump(plan, f)
        tab.tabulate(self.run, plots=False)
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("`build/workloads/fx --scale 0.1 /tmp/bt/out`", rep)

    def test_latency_at_timer_resolution_is_no_number(self):
        self.rewrite("fix", "glibc", "latency.json",
                     tmbench={"latency_ns": {"malloc": {"p50": 20}}, "latency_timer_ns": 20.4})
        tab.tabulate(self.run, plots=False)
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("| glibc | < 21 ns | 80 | 400 | < 21 ns | 60 | 300 | 20.4 ns |", rep)

    def test_busy_cells_and_dirty_tree_are_flagged(self):
        self.rewrite("fix", "jemalloc", "time-1.json", noise={"busy": True, "other_share": 0.3})
        s = tab.tabulate(self.run, plots=False)
        self.assertTrue(self.cells(s)[("fix", "jemalloc")]["busy"])
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("**1 of 10 cells were measured while the machine was busy**", rep)
        self.assertIn("*busy* (30 %)", rep)
        self.assertIn("**Built from a tree with uncommitted changes**", rep)  # the sample's commit is -dirty

    def test_slow_cells_are_flagged(self):
        for alloc in ("glibc", "jemalloc"):
            for r in (1, 2):
                self.rewrite("fix", alloc, f"time-{r}.json", speed={"before_s": 0.010, "after_s": 0.011})
        self.rewrite("fix", "jemalloc", "time-2.json", speed={"before_s": 0.029, "after_s": 0.027})
        self.rewrite("fix", "glibc", "time-2.json", speed={"before_s": 0.011, "after_s": 0.030})
        self.rewrite("fix", "glibc", "mem-1.json", speed={"before_s": 0.030, "after_s": 0.030})
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)
        self.assertTrue(c[("fix", "jemalloc")]["slow"])
        self.assertEqual(c[("fix", "jemalloc")]["slow_factor"], 2.7)
        self.assertNotIn("slow", c[("fix", "glibc")])  # slow after one timed step only; memory steps do not count
        self.assertEqual(s["runs"][0]["speed_ref_s"], 0.010)
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("**1 of 10 cells were measured while the machine ran slow**", rep)
        self.assertIn("*slow* (2.70x)", rep)
        self.assertIn("| speed probe | fastest 10.0 ms;", rep)

    def test_unstable_cells_are_flagged(self):
        self.rewrite("fix", "jemalloc", "time-1.json", times=[0.010, 0.011, 0.010])
        self.rewrite("fix", "jemalloc", "time-2.json", times=[0.015, 0.016, 0.015])
        self.set_times("fix", "glibc", 0.020, 0.05)  # blocks within 1.25x of each other
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)
        self.assertEqual(c[("fix", "jemalloc")]["unstable"], 1.5)
        self.assertNotIn("unstable", c[("fix", "glibc")])
        rep = read(os.path.join(self.run, "report.md"))
        self.assertIn("cells are unstable**", rep)
        self.assertIn("*unstable* (1.50x)", rep)

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

    def test_plot_whiskers_are_the_ratio_interval(self):
        import plots
        s = tab.tabulate(self.run, plots=False)
        c = self.cells(s)[("fix", "jemalloc")]
        lo, hi = c["ratio_glibc_ci"]
        below, above = plots.whisker(c, "ratio_glibc")
        self.assertAlmostEqual(c["ratio_glibc"] - below, lo)
        self.assertAlmostEqual(c["ratio_glibc"] + above, hi)
        self.assertEqual(plots.whisker({"ratio_glibc": 1.2}, "ratio_glibc"), (0.0, 0.0))

    def test_thread_scaling(self):
        # cells of a sweep (NAME@T): the rate is ops over the median wall time
        def cell(alloc, t, secs, status="ok"):
            return {"host": "h", "workload": f"wl@{t}", "allocator": alloc, "status": status,
                    "sweep_base": "wl", "sweep_threads": t, "ops": 1000000, "time_median_s": secs}
        cells = [cell("glibc", 1, 1.0), cell("glibc", 2, 0.5), cell("glibc", 8, 0.8),
                 cell("tinymalloc", 1, 0.5), cell("tinymalloc", 2, 0.25), cell("tinymalloc", 8, 2.0, "FAIL"),
                 cell("jemalloc", 1, 0.5), cell("jemalloc", 2, None, "incomplete"),
                 {"host": "h", "workload": "other", "allocator": "glibc", "status": "ok", "ops": 5,
                  "time_median_s": 1.0},
                 {"host": "h", "workload": "lone@2", "allocator": "glibc", "status": "ok", "ops": 5,
                  "time_median_s": 1.0, "sweep_base": "lone", "sweep_threads": 2}]
        rows = tab.scaling(cells)
        self.assertEqual({r["base"] for r in rows}, {"wl"})  # one count is no sweep
        g = next(r for r in rows if r["allocator"] == "glibc")
        self.assertEqual(g["points"], [[1, 1e6], [2, 2e6], [8, 1.25e6]])
        t = next(r for r in rows if r["allocator"] == "tinymalloc")
        self.assertEqual(t["points"][-1], [8, None])
        self.assertEqual(t["missing"], [[8, "FAIL"]])
        text = "\n".join(tab.render_scaling(rows, {"scaling_wl": "plots/scaling_wl.png"}, False))
        self.assertIn("## Thread scaling", text)
        self.assertIn("| allocator | 1 thread | 2 threads | 8 threads | most vs 1 |", text)
        self.assertIn("| glibc | 1.00 M/s | 2.00 M/s | 1.25 M/s | 1.25x |", text)
        self.assertIn("| tinymalloc | 2.00 M/s | 4.00 M/s | FAIL | - |", text)
        # a cell that has not run yet is not a failure
        self.assertIn("| jemalloc | 2.00 M/s | incomplete | - | - |", text)
        self.assertIn("(plots/scaling_wl.png)", text)
        self.assertEqual(tab.render_scaling([], {}, False), [])
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return
        import plots
        out = plots.make_plots({"cells": [], "scaling": rows}, self.tmp)
        with open(os.path.join(self.tmp, out["scaling_wl"]), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_incomplete_run(self):
        os.unlink(os.path.join(self.run, "raw", "fix", "glibc", "time-2.json"))
        c = self.cells(tab.tabulate(self.run, plots=False))
        self.assertEqual(c[("fix", "glibc")]["status"], "incomplete")
        self.assertEqual(c[("fix", "glibc")]["runs"], 2)

    def test_not_a_run(self):
        self.assertEqual(quiet(tab.main, [self.tmp]), 2)

    def copy_run(self, name, fname, **fields):
        """A copy of the sample run with fields of one of its JSON files changed."""
        dst = os.path.join(self.tmp, name)
        shutil.copytree(self.run, dst)
        obj = json.loads(read(os.path.join(dst, fname)))
        obj.update(fields)
        with open(os.path.join(dst, fname), "w") as f:
            json.dump(obj, f)
        return dst

    def test_merge_hosts(self):
        other = self.copy_run("run-other", "env.json", host="second-host")
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

    def test_merge_never_divides_across_hosts(self):
        """Two machines that recorded the same run id: every ratio, verdict and geomean stays
        within its own host, although the cells share run id and workload."""
        self.set_times("fix", "glibc", 0.020, 0.01)
        self.set_times("fix", "jemalloc", 0.010, 0.01)
        other = self.copy_run("run-other", "env.json", host="slow-host")
        # on the second machine glibc takes 0.080 s and jemalloc 0.040 s: 0.5x, as on the first;
        # a ratio across machines would read 0.125x or 2x
        self.set_times("fix", "glibc", 0.080, 0.01, run=other)
        self.set_times("fix", "jemalloc", 0.040, 0.01, run=other)
        s = merge.merge([self.run, other], os.path.join(self.tmp, "merged"), plots=False)
        fix = {c["host"]: c for c in s["cells"] if c["workload"] == "fix" and c["allocator"] == "jemalloc"}
        for host in ("vm", "slow-host"):
            self.assertAlmostEqual(fix[host]["ratio_glibc"], 0.5, places=6)
            self.assertAlmostEqual(fix[host]["ratio_best"], 1.0, places=6)
            lo, hi = fix[host]["ratio_glibc_ci"]
            self.assertTrue(0.45 < lo <= 0.5 <= hi < 0.55, (host, lo, hi))
        self.assertEqual(sorted(v["host"] for v in s["verdicts"] if v["workload"] == "fix"), ["slow-host", "vm"])
        geo = {a["host"]: a["geomean_ratio_glibc"] for a in s["allocators"] if a["allocator"] == "jemalloc"}
        self.assertEqual(set(geo), {"vm", "slow-host"})
        self.assertAlmostEqual(geo["vm"], geo["slow-host"], places=6)

    def test_merge_refuses_duplicates(self):
        self.assertEqual(quiet(merge.main, [self.run, self.run, "--out", os.path.join(self.tmp, "m"), "--no-latest"]), 2)

    def test_merge_drops_a_workload_recorded_again(self):
        again = self.copy_run("run-again", "plan.json", run_id="again")
        out = os.path.join(self.tmp, "m")
        drops = ["--drop", "sample-mixed:fix", "--drop", "sample-mixed:multi"] + \
            [x for w in ("failing", "crash", "static") for x in ("--drop", f"again:{w}")]
        self.assertEqual(quiet(merge.main, [self.run, again, "--out", out, "--no-latest", "--no-plots"] + drops), 0)
        s = json.loads(read(os.path.join(out, "summary.json")))
        self.assertEqual(len(s["cells"]), 10)
        self.assertEqual({c["run_id"] for c in s["cells"] if c["workload"] in ("fix", "multi")}, {"again"})
        self.assertEqual({c["run_id"] for c in s["cells"] if c["workload"] == "crash"}, {"sample-mixed"})
        src = {r["run_id"]: r["dropped"] for r in json.loads(read(os.path.join(out, "sources.json")))["runs"]}
        self.assertEqual(src, {"sample-mixed": ["fix", "multi"], "again": ["crash", "failing", "static"]})
        rep = read(os.path.join(out, "report.md"))
        self.assertIn("| left out of this merge | fix, multi | crash, failing, static |", rep)
        self.assertIn("`raw/` of the runs merged here", rep)
        # two runs of one host with the same allocators: each listed once
        table = rep.split("Allocators:", 1)[1].split("How it was measured", 1)[0]
        names = [ln.split("|")[1].strip() for ln in table.splitlines() if ln.startswith("| ") and "---" not in ln]
        self.assertEqual(len(names), len(set(names)), table)
        # a drop that matches nothing, or a token without a workload, is a usage error
        for bad in (["--drop", "again:nosuch"], ["--drop", "again"]):
            self.assertEqual(quiet(merge.main, [self.run, again, "--out", os.path.join(self.tmp, "m2"),
                                                "--no-latest", "--no-plots"] + drops + bad), 2, bad)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "m2")))


if __name__ == "__main__":
    unittest.main()
