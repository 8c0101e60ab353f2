# Parsers and checks of bench/benchlib.py on recorded samples (tests/bench/samples/).
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import sample  # noqa: E402
import benchlib  # noqa: E402

JEMALLOC = {"name": "jemalloc", "lib": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
GLIBC = {"name": "glibc", "lib": None, "expect": "/lib/x86_64-linux-gnu/libc.so.6"}


class Hyperfine(unittest.TestCase):
    def test_ok_run(self):
        h = benchlib.parse_hyperfine(sample("hyperfine_ok.json"))
        self.assertEqual(len(h["times"]), 3)
        self.assertEqual(h["exit_codes"], [0, 0, 0])
        self.assertEqual(h["command"], "true@glibc")
        self.assertAlmostEqual(benchlib.median(h["times"]), 0.0038457300000000003)

    def test_crashed_runs_keep_exit_codes(self):
        h = benchlib.parse_hyperfine(sample("hyperfine_crash.json"))
        self.assertEqual(h["exit_codes"], [139, 139])

    def test_not_hyperfine(self):
        with self.assertRaises(ValueError):
            benchlib.parse_hyperfine('{"foo": 1}')
        with self.assertRaises(ValueError):
            benchlib.parse_hyperfine("not json")


class Strace(unittest.TestCase):
    def test_multiprocess_memory_class(self):
        s = benchlib.parse_strace_c(sample("strace_multiproc.txt"))
        self.assertEqual(benchlib.oscall_counts(s), {"mmap": 135, "munmap": 9, "mremap": 0, "brk": 6, "madvise": 6})
        self.assertEqual(s["syscalls"]["mprotect"]["calls"], 23)
        self.assertEqual(s["total_calls"], 179)

    def test_errors_column(self):
        s = benchlib.parse_strace_c(sample("strace_all.txt"))
        self.assertEqual(s["syscalls"]["wait4"], {"calls": 82, "errors": 41, "seconds": 0.447089})
        self.assertEqual(s["syscalls"]["openat"]["errors"], 589)
        self.assertEqual(sum(v["calls"] for v in s["syscalls"].values()), s["total_calls"])

    def test_crashed_program(self):
        s = benchlib.parse_strace_c(sample("strace_crash.txt"))
        self.assertEqual(benchlib.oscall_counts(s)["madvise"], 0)
        self.assertEqual(benchlib.oscall_counts(s)["mmap"], 8)

    def test_no_summary(self):
        with self.assertRaises(ValueError):
            benchlib.parse_strace_c("strace: exec: No such file or directory\n")


class GnuTime(unittest.TestCase):
    def test_ok(self):
        t = benchlib.parse_time_output(sample("time_ok.txt"))
        self.assertEqual(t["max_rss_kb"], 2104)
        self.assertEqual(t["minflt"], 188)
        self.assertEqual(t["exit"], 0)
        self.assertIsNone(t["signal"])

    def test_exit_status(self):
        t = benchlib.parse_time_output(sample("time_exit3.txt"))
        self.assertEqual(t["exit"], 3)
        self.assertEqual(benchlib.status_problem(t, 0), "exit status 3 (expected 0)")
        self.assertIsNone(benchlib.status_problem(t, 3))

    def test_signal(self):
        t = benchlib.parse_time_output(sample("time_signal.txt"))
        self.assertEqual(t["signal"], 11)
        self.assertIsNone(t["exit"])
        self.assertEqual(benchlib.status_problem(t, 0), "killed by SIGSEGV")

    def test_missing_record(self):
        with self.assertRaises(ValueError):
            benchlib.parse_time_output("")

    def test_timeout_wins(self):
        self.assertTrue(benchlib.status_problem({"timed_out": True, "timeout_s": 5, "exit": None}).startswith("timeout"))


class Probe(unittest.TestCase):
    def test_preloaded_allocator(self):
        recs = benchlib.parse_probe(sample("probe_jemalloc.txt"))
        self.assertEqual(len(recs), 5)
        self.assertEqual(sum(1 for r in recs if r[2] == "fini"), 2)
        # The library is compared by file identity, so it must exist: a stand-in file takes
        # jemalloc's place, and the case runs whether jemalloc is installed or not.
        with tempfile.TemporaryDirectory() as tmp:
            lib = os.path.join(tmp, "libjemalloc.so.2")
            open(lib, "w").close()
            recs = [(pid, lib if path == JEMALLOC["lib"] else path, tag) for pid, path, tag in recs]
            alloc = dict(JEMALLOC, lib=lib)
            self.assertIsNone(benchlib.check_probe(recs, alloc, 3))
            self.assertIn("only 3 of 4", benchlib.check_probe(recs, alloc, 4))
            other = os.path.join(tmp, "libother.so")
            open(other, "w").close()
            self.assertIn("served by", benchlib.check_probe(recs, dict(JEMALLOC, lib=other)) or "")

    def test_wrong_library_is_a_failure(self):
        recs = benchlib.parse_probe(sample("probe_glibc.txt"))
        self.assertIn("served by /lib/x86_64-linux-gnu/libc.so.6", benchlib.check_probe(recs, JEMALLOC))
        self.assertIsNone(benchlib.check_probe(recs, GLIBC))
        recs = benchlib.parse_probe(sample("probe_jemalloc.txt"))
        self.assertIn("libjemalloc", benchlib.check_probe(recs, GLIBC))

    def test_static_binary_leaves_no_record(self):
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(__file__), "samples", "probe_static.txt")))
        self.assertIn("no probe record", benchlib.check_probe([], GLIBC))

    def test_unresolved(self):
        self.assertIn("served by (unresolved)", benchlib.check_probe([(1, "(unresolved)", "")], GLIBC))


class Tmbench(unittest.TestCase):
    def test_line(self):
        obj, err = benchlib.parse_tmbench("noise\n" + sample("tmbench_stdout.txt"))
        self.assertIsNone(err)
        self.assertEqual(obj["ops_per_sec"], 100000)
        self.assertEqual(obj["latency_ns"]["malloc"]["p99"], 80)

    def test_absent_and_broken(self):
        self.assertEqual(benchlib.parse_tmbench("hello\n"), (None, None))
        obj, err = benchlib.parse_tmbench('TMBENCH {"ops": \n')
        self.assertIsNone(obj)
        self.assertIn("bad TMBENCH", err)
        self.assertIn("not a JSON object", benchlib.parse_tmbench("TMBENCH [1]\n")[1])


class Stats(unittest.TestCase):
    def test_quantiles(self):
        self.assertEqual(benchlib.median([3, 1, 2]), 2)
        self.assertEqual(benchlib.median([4, 1, 2, 3]), 2.5)
        self.assertEqual(benchlib.quantile([1, 2, 3, 4, 5], 0.25), 2)
        self.assertIsNone(benchlib.median([]))

    def test_geomean(self):
        self.assertAlmostEqual(benchlib.geomean([2, 8]), 4.0)
        self.assertAlmostEqual(benchlib.geomean([0.5, 2, None]), 1.0)
        self.assertIsNone(benchlib.geomean([]))

    def test_thin(self):
        s = [[i, i] for i in range(2500)]
        t = benchlib.thin(s, 1000)
        self.assertLessEqual(len(t), 1001)
        self.assertEqual(t[-1], [2499, 2499])


class QuietMachine(unittest.TestCase):
    """wait_quiet waits for the load average as well as for an idle window (the window here is
    this idle test process's own 10 ms, so only the load decides)."""

    def test_waits_for_the_load_average_to_fall(self):
        loads = iter([3.6, 1.4, 0.8, 0.2])
        said = []
        ok, share, load = benchlib.wait_quiet(60, 1.0, 2, window=0.01, log=said.append,
                                              loadavg=lambda: (next(loads), 0, 0))
        self.assertTrue(ok)
        self.assertEqual(load, 0.8)
        self.assertEqual(len(said), 2)
        self.assertIn("load average 3.60", said[0])

    def test_refuses_when_it_stays_high(self):
        ok, share, load = benchlib.wait_quiet(0.05, 1.0, 2, window=0.01, log=lambda m: None,
                                              loadavg=lambda: (2.5, 0, 0))
        self.assertFalse(ok)
        self.assertEqual(load, 2.5)

    def test_bound_follows_the_cpus(self):
        ok, _, _ = benchlib.wait_quiet(0, 1.0, 8, window=0.01, log=lambda m: None,
                                       loadavg=lambda: (3.9, 0, 0))
        self.assertTrue(ok)  # 3.9 on 8 CPUs is under half of them


class SpeedProbe(unittest.TestCase):
    def test_probe_times_the_loop_and_restores_the_affinity(self):
        cpus = benchlib.usable_cpus()
        before = os.sched_getaffinity(0)
        t = benchlib.speed_probe(reps=2, cpu=cpus[-1])
        self.assertGreater(t, 0)
        self.assertLess(t, 5)
        self.assertEqual(os.sched_getaffinity(0), before)

    def test_slow_steps_against_the_runs_best(self):
        recs = [{"speed": {"before_s": 0.010, "after_s": 0.011}}, {"speed": {"before_s": 0.030, "after_s": 0.027}},
                {"kind": "build"}, {"speed": {"before_s": 0.012, "after_s": 0.030}}]
        ref = benchlib.speed_ref(recs)
        f = [benchlib.slowness(r, ref) for r in recs]
        self.assertEqual(ref, 0.010)
        self.assertAlmostEqual(f[0], 1.0)
        self.assertAlmostEqual(f[1], 2.7)
        self.assertIsNone(f[2])
        self.assertAlmostEqual(f[3], 1.2)  # slow at one end only
        self.assertIsNone(benchlib.speed_ref([{"kind": "time"}]))
        self.assertIsNone(benchlib.slowness({"kind": "time"}, None))

    def test_block_spread(self):
        recs = [{"kind": "time", "times": [9.0, 9.4, 9.5]}, {"kind": "mem"}, {"kind": "time", "times": [14.0, 14.1]}]
        self.assertAlmostEqual(benchlib.block_spread(recs), 14.05 / 9.4)
        self.assertIsNone(benchlib.block_spread(recs[:2]))


if __name__ == "__main__":
    unittest.main()
