# End to end: bench/run.py on the fixture workload (tests/bench/fixture.c) under glibc and
# jemalloc, plus a library that is not an allocator (libm: the probe must catch that glibc
# served malloc), a failing, a crashing and a static program; resume, interrupt, usage errors.
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, build_fixture  # noqa: E402
import allocators  # noqa: E402
import run as runner  # noqa: E402

RUN = os.path.join(ROOT, "bench", "run.py")
MISSING = [t for t in ("hyperfine", "strace", "cc") if not shutil.which(t)] + \
    ([] if os.path.exists("/usr/bin/time") else ["GNU time"])
JEMALLOC = allocators.find_package_lib("libjemalloc2", r"/libjemalloc\.so\.2$", "libjemalloc.so.2")
LIBM = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                         "/lib64/libm.so.6") if os.path.exists(p)), None)


def run(args, **kw):
    return subprocess.run([PY, RUN] + args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=120, **kw)


class Plan(unittest.TestCase):
    """The order of the steps (bench/run.py build_plan), without running them."""
    WL = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    AL = [{"name": "x"}, {"name": "y"}]

    def plan(self, **kw):
        opts = {"seed": 3, "runs": 0, "blocks": 4, "strace": False, "latency": False}
        opts.update(kw)
        return runner.build_plan(self.WL, self.AL, opts)

    def test_runs_0_gives_one_mem_run_per_block(self):
        steps = self.plan()
        self.assertEqual(len(steps), 3 * 2 * 4)
        self.assertEqual({s["kind"] for s in steps}, {"mem"})
        self.assertEqual(sorted(s["id"] for s in steps if s["workload"] == "a" and s["allocator"] == "x"),
                         [f"a/x/mem-{r}" for r in range(1, 5)])

    def test_workload_by_workload_without_interleave(self):
        self.assertEqual([s["workload"] for s in self.plan()], ["a"] * 8 + ["b"] * 8 + ["c"] * 8)

    def test_interleave_runs_every_cell_of_a_round_before_the_next_round(self):
        steps = self.plan(interleave=True)
        self.assertEqual([s["round"] for s in steps], [r for r in range(1, 5) for _ in range(6)])
        orders = [[(s["workload"], s["allocator"]) for s in steps if s["round"] == r] for r in range(1, 5)]
        for o in orders:
            self.assertEqual(sorted(o), [(w, a) for w in "abc" for a in "xy"])
        # shuffled over the workloads, not workload by workload, and afresh each round
        self.assertTrue(any([w for w, _ in o] != sorted(w for w, _ in o) for o in orders), orders)
        self.assertGreater(len({tuple(o) for o in orders}), 1)

    def test_interleave_keeps_a_rounds_mem_and_time_steps_together(self):
        steps = self.plan(interleave=True, runs=4, blocks=2)
        for i in range(0, len(steps), 2):
            m, t = steps[i], steps[i + 1]
            self.assertEqual((m["kind"], t["kind"]), ("mem", "time"))
            self.assertEqual((m["workload"], m["allocator"], m["round"]), (t["workload"], t["allocator"], t["round"]))


@unittest.skipIf(MISSING, "missing: " + ", ".join(MISSING))
@unittest.skipUnless(JEMALLOC, "libjemalloc2 not installed")
class LiveMarks(unittest.TestCase):
    """The console's marks for a finished step follow the report's rules (bench/run.py live_marks)."""
    SLOW = {"before_s": 0.02, "after_s": 0.021}  # twice the run's best probe, 0.01 s

    def test_slow_marks_timed_steps_only(self):
        self.assertIn("[slow: the machine ran at 1/2.00",
                      runner.live_marks({"kind": "time", "speed": self.SLOW}, 0.01))
        self.assertEqual(runner.live_marks({"kind": "mem", "speed": self.SLOW}, 0.01), "")
        self.assertEqual(runner.live_marks({"kind": "time", "speed": {"before_s": 0.012}}, 0.01), "")

    def test_busy_marks_any_step(self):
        res = {"kind": "mem", "noise": {"busy": True, "other_share": 0.4}}
        self.assertEqual(runner.live_marks(res, None), "  [busy: others took 40 % of the CPU]")


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tm-bench-e2e-")
        fx = build_fixture(cls.tmp)
        static = os.path.join(cls.tmp, "fixture-static")
        cls.have_static = subprocess.run(["cc", "-static", "-O2", "-o", static,
                                          os.path.join(ROOT, "tests", "bench", "fixture.c")],
                                         stderr=subprocess.DEVNULL).returncode == 0
        wl = [
            {"name": "fix", "group": "test", "description": "fixture, one process", "cmd": [fx],
             "scales": {"default": [], "quick": ["--n", "3000"]}, "latency_args": ["--latency"], "timeout": 30,
             "check": {"exit": 0, "stdout_regex": "^TMBENCH ",
                       "cmd": ["sh", "-c", "grep -q ops_per_sec \"$TMBENCH_STDOUT\""]}},
            {"name": "multi", "group": "test", "cmd": [fx, "--children", "2", "--n", "3000"], "timeout": 30},
            {"name": "py", "description": "Debian's python3: non-PIE, canonical PLT entry for malloc",
             "cmd": ["/usr/bin/python3", "-c", "print('TMBENCH ' + '{}')"], "timeout": 30},
            {"name": "failing", "cmd": [fx, "--fail"], "timeout": 30},
            {"name": "crash", "cmd": [fx, "--crash"], "timeout": 30},
            {"name": "badout", "cmd": [fx, "--n", "10"], "timeout": 30, "check": {"stdout_regex": "^NEVER"}},
            {"name": "slow", "cmd": [fx, "--n", "10", "--sleep-ms", "5000"], "timeout": 1},
        ]
        if cls.have_static:
            wl.append({"name": "static", "cmd": [static, "--n", "10"], "timeout": 30})
        cls.man = os.path.join(cls.tmp, "manifest")
        os.makedirs(cls.man)
        with open(os.path.join(cls.man, "t.json"), "w") as f:
            json.dump({"workloads": wl}, f)
        # a second manifest for the quick resume/interrupt runs
        cls.man2 = os.path.join(cls.tmp, "manifest2")
        os.makedirs(cls.man2)
        with open(os.path.join(cls.man2, "t.json"), "w") as f:
            json.dump({"workloads": [{"name": "nap", "cmd": [fx, "--n", "100", "--sleep-ms", "300"], "timeout": 30},
                                     {"name": "quick", "cmd": [fx, "--n", "100"], "timeout": 30, "threads": 1},
                                     {"name": "bad", "cmd": [fx, "--fail"], "timeout": 30}]}, f)
        cls.res = os.path.join(cls.tmp, "results")
        allocs = f"glibc,jemalloc" + (f",notalloc={LIBM}" if LIBM else "")
        cls.p = run(["--manifest", cls.man, "--results-dir", cls.res, "--allocators", allocs, "--scale", "quick",
                     "--runs", "2", "--blocks", "2", "--warmup", "1", "--seed", "1", "--run-id", "e2e"])
        cls.dir = os.path.join(cls.res, "e2e")
        with open(os.path.join(cls.dir, "summary.json")) as f:
            cls.summary = json.load(f)
        cls.cells = {(c["workload"], c["allocator"]): c for c in cls.summary["cells"]}
        with open(os.path.join(cls.dir, "report.md")) as f:
            cls.report = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_a_matrix_that_ran_to_the_end_exits_0_and_shows_its_fails(self):
        self.assertEqual(self.p.returncode, 0, self.p.stderr)
        self.assertIn("FAIL crash x glibc: mem: killed by SIGSEGV", self.p.stdout)
        self.assertRegex(self.p.stderr, r"bench: \d+ cell\(s\) FAIL")

    def test_strict_turns_a_fail_into_exit_1(self):
        res = os.path.join(self.tmp, "res-strict")
        common = ["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--workloads", "bad",
                  "--runs", "1", "--no-plots", "--no-strace"]
        p = run(common + ["--run-id", "s1", "--strict"])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("--strict: exit 1", p.stderr)
        p = run(common + ["--run-id", "s2"])
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_noise_recorded_for_every_step(self):
        for name in ("time-1.json", "mem-1.json", "strace.json"):
            with open(os.path.join(self.dir, "raw", "fix", "glibc", name)) as f:
                n = json.load(f)["noise"]
            self.assertGreater(n["wall_s"], 0)
            self.assertGreaterEqual(n["other_share"], 0)
            self.assertIn(n["busy"], (True, False))
            with open(os.path.join(self.dir, "raw", "fix", "glibc", name)) as f:
                sp = json.load(f)["speed"]
            self.assertGreater(sp["before_s"], 0)
            self.assertGreater(sp["after_s"], 0)
        self.assertGreater(self.summary["runs"][0]["speed_ref_s"], 0)
        for k in ("cpu_governor", "cpu_boost"):
            self.assertTrue(self.summary["runs"][0]["env"][k])

    def test_pin_runs_single_threaded_workloads_on_one_cpu(self):
        res = os.path.join(self.tmp, "res-pin")
        p = run(["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--workloads", "quick,nap",
                 "--runs", "1", "--no-plots", "--no-strace", "--pin", "--run-id", "p1"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(res, "p1", "raw", "quick", "glibc", "mem-1.json")) as f:
            m = json.load(f)
        cpu = str(sorted(os.sched_getaffinity(0))[-1])
        self.assertEqual(m["pinned_cpu"], int(cpu))
        self.assertIn(["taskset", "-c", cpu], [m["run"]["argv"][i:i + 3] for i in range(len(m["run"]["argv"]))])
        with open(os.path.join(res, "p1", "raw", "nap", "glibc", "mem-1.json")) as f:
            m = json.load(f)
        self.assertNotIn("pinned_cpu", m)        # threads unknown: not pinned
        self.assertNotIn("taskset", m["run"]["argv"])

    def test_quiet_machine_refuses_a_busy_one(self):
        spin = subprocess.Popen([PY, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            res = os.path.join(self.tmp, "res-busy")
            p = run(["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--workloads", "quick",
                     "--runs", "1", "--no-strace", "--quiet-machine", "0", "--busy-threshold", "0.2",
                     "--run-id", "b1"])
        finally:
            spin.kill()
            spin.wait()
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("stayed busy", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(res, "b1")))

    def test_progress_lines(self):
        lines = [l for l in self.p.stdout.splitlines() if l.startswith("[")]
        self.assertTrue(lines)
        self.assertRegex(lines[-1], r"^\[\s*(\d+)/\1\] \S+\s+\S+\s+\S+.*elapsed \d+:\d\d:\d\d\s+eta ")

    def test_passing_cells_have_figures(self):
        for wl in ("fix", "multi", "py"):
            for a in ("glibc", "jemalloc"):
                c = self.cells[(wl, a)]
                self.assertEqual(c["status"], "ok", c.get("reason"))
                self.assertEqual(c["runs"], 2)
                self.assertGreater(c["time_median_s"], 0)
                self.assertGreater(c["rss_max_kb"], 0)
                self.assertGreater(c["mmap"], 0)
        self.assertAlmostEqual(self.cells[("fix", "glibc")]["ratio_glibc"], 1.0)
        self.assertEqual(self.cells[("fix", "jemalloc")]["latency_ns"]["free"]["p50"], 15)
        self.assertEqual(self.cells[("fix", "jemalloc")]["ops_per_sec"], 3000000)

    def test_probe_proves_the_allocator(self):
        with open(os.path.join(self.dir, "raw", "fix", "jemalloc", "time-1.json")) as f:
            t = json.load(f)
        self.assertEqual(t["probe"]["processes"], 2)  # 1 warm-up + 1 timed run
        self.assertTrue(all(os.path.samefile(p, JEMALLOC) for p in t["probe"]["libs"]))
        with open(os.path.join(self.dir, "raw", "multi", "glibc", "mem-1.json")) as f:
            m = json.load(f)
        self.assertEqual(m["probe"]["processes"], 1)  # forked children (no exec) run no constructor
        self.assertTrue(all("libc.so" in p for p in m["probe"]["libs"]))

    def test_probe_sees_through_a_canonical_plt_entry(self):
        # Debian's python3 is non-PIE and takes malloc's address: dlsym(RTLD_DEFAULT) lands in
        # the executable; the probe must still name the allocator that serves the calls.
        probe_so = os.path.join(self.res, "..", "probe-check.txt")
        for lib, want in ((JEMALLOC, JEMALLOC), ("", "libc.so")):
            if os.path.exists(probe_so):
                os.unlink(probe_so)
            env = dict(os.environ, TMBENCH_PROBE_FILE=probe_so,
                       LD_PRELOAD=f"{os.path.join(ROOT, 'build', 'bench', 'tm-probe.so')} {lib}".strip())
            subprocess.run(["/usr/bin/python3", "-c", "pass"], env=env, check=True)
            with open(probe_so) as f:
                recs = [l.split("\t") for l in f.read().splitlines()]
            self.assertTrue(recs)
            for r in recs:
                self.assertIn(os.path.basename(want), r[1])

    @unittest.skipUnless(LIBM, "no libm found")
    def test_a_library_that_does_not_serve_malloc_fails(self):
        c = self.cells[("fix", "notalloc")]
        self.assertEqual(c["status"], "FAIL")
        self.assertIn("served by", c["reason"])
        self.assertNotIn("time_median_s", c)

    def test_failures_are_fail_not_times(self):
        want = {"failing": "exit status 1", "crash": "SIGSEGV", "badout": "does not match", "slow": "timeout"}
        if self.have_static:
            want["static"] = "no probe record"
        for wl, why in want.items():
            for a in ("glibc", "jemalloc"):
                c = self.cells[(wl, a)]
                self.assertEqual(c["status"], "FAIL")
                self.assertIn(why, c["reason"])
                self.assertNotIn("time_median_s", c)

    def test_report_tables(self):
        rep = self.report
        self.assertIn("## Summary", rep)
        row = re.search(r"^\| jemalloc \| [\d.]+x \([\d.]+-[\d.]+\) \|", rep, re.M)
        self.assertTrue(row, rep)
        self.assertIn("run over the 3 workloads where every allocator passed", rep)
        # the time may carry marks (*busy*, *slow*, *unstable*): 2 runs of 40 ms decide nothing
        self.assertRegex(rep, r"\| glibc \| \**[\d.]+ ms( \*[a-z]+\* \([\d.]+ ?[%x]\))*\**( \(tie\))? \| "
                              r"[\d.]+ % \(n=2\) \| 1\.00x \(")
        self.assertIn("**FAIL**: mem: killed by SIGSEGV", rep)
        self.assertIn("Latency (ns", rep)
        self.assertIn("5.3" if "5.3" in json.dumps(self.summary["runs"][0]["allocators"]) else "jemalloc", rep)
        for f in ("summary.csv", "summary.json", "env.json", "plan.json", "raw/fix/glibc/hyperfine-1.json",
                  "raw/fix/glibc/strace.txt"):
            self.assertTrue(os.path.exists(os.path.join(self.dir, f)), f)
        self.assertEqual(os.readlink(os.path.join(self.res, "latest")), "e2e")

    def test_environment_recorded(self):
        with open(os.path.join(self.dir, "env.json")) as f:
            env = json.load(f)
        for k in ("cpu_model", "cpus_online", "kernel", "glibc", "thp_enabled", "project_commit", "date", "host"):
            self.assertIn(k, env)
        self.assertIn("jemalloc", env["allocators"])

    def test_resume_runs_only_what_is_missing(self):
        res = os.path.join(self.tmp, "res-resume")
        p = run(["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--workloads", "quick",
                 "--runs", "2", "--run-id", "r1", "--no-plots", "--no-strace"])
        self.assertEqual(p.returncode, 0, p.stderr)
        raw = os.path.join(res, "r1", "raw", "quick", "glibc")
        os.unlink(os.path.join(raw, "time-2.json"))
        os.unlink(os.path.join(raw, "mem-2.json"))
        p = run(["--resume", "r1", "--results-dir", res, "--no-plots"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("resuming: 2 of 4 steps already recorded", p.stdout)
        self.assertEqual(len([l for l in p.stdout.splitlines() if l.startswith("[")]), 2)
        self.assertTrue(os.path.exists(os.path.join(raw, "time-2.json")))
        p = run(["--resume", "r1", "--results-dir", res, "--workloads", "nap"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot be changed when resuming", p.stderr)

    def test_host_names_the_machine_and_a_run_resumes_only_where_it_began(self):
        res = os.path.join(self.tmp, "res-host")
        p = run(["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--workloads", "quick",
                 "--runs", "1", "--run-id", "h1", "--no-plots", "--no-strace", "--host", "node-7"])
        self.assertEqual(p.returncode, 0, p.stderr)
        envp = os.path.join(res, "h1", "env.json")
        with open(envp) as f:
            env = json.load(f)
        self.assertEqual((env["host"], env["hostname"]), ("node-7", socket.gethostname()))
        with open(os.path.join(res, "h1", "summary.json")) as f:
            self.assertEqual({c["host"] for c in json.load(f)["cells"]}, {"node-7"})
        env["hostname"] = "elsewhere"
        with open(envp, "w") as f:
            json.dump(env, f)
        p = run(["--resume", "h1", "--results-dir", res, "--no-plots"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("started on host elsewhere", p.stderr)
        p = run(["--manifest", self.man2, "--results-dir", res, "--allocators", "glibc", "--host", "a b",
                 "--dry-run"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad --host", p.stderr)

    def test_interrupt_keeps_finished_steps(self):
        res = os.path.join(self.tmp, "res-int")
        proc = subprocess.Popen([PY, RUN, "--manifest", self.man2, "--results-dir", res, "--allocators", "glibc",
                                 "--workloads", "nap", "--runs", "3", "--run-id", "i1", "--no-plots", "--no-strace"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:
            if line.startswith("[") and " ok " in line:
                break
        time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 130, err)
        self.assertIn("--resume i1", err)
        done = [f for f in os.listdir(os.path.join(res, "i1", "raw", "nap", "glibc")) if re.match(r"(mem|time)-\d\.json$", f)]
        self.assertGreaterEqual(len(done), 1)
        self.assertLess(len(done), 6)
        self.assertFalse(os.path.exists(os.path.join(res, "latest")))
        p = run(["--resume", "i1", "--results-dir", res, "--no-plots"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(res, "i1", "summary.json")) as f:
            c = json.load(f)["cells"][0]
        self.assertEqual((c["status"], c["runs"]), ("ok", 3))

    def test_usage_errors(self):
        base = ["--manifest", self.man2, "--results-dir", os.path.join(self.tmp, "res-err"), "--dry-run"]
        cases = [
            (["--workloads", "nosuch"], 2, "nosuch"),
            (["--allocators", "glibc,nosuchalloc"], 2, "nosuchalloc"),
            (["--allocators", "glibc,x=/nonexistent/libx.so"], 3, "/nonexistent/libx.so"),
            (["--shard", "3/2"], 2, "--shard"),
            (["--runs", "-1"], 2, "--runs"),
            (["--runs", "2", "--blocks", "3"], 2, "--blocks"),
            (["--runs", "0", "--blocks", "0"], 2, "--blocks"),
            (["--scale", "huge", "--workloads", "quick"], 0, ""),
        ]
        for args, code, word in cases:
            p = run(base + ["--allocators", "glibc"] + args if "--allocators" not in args else base + args)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertIn(word, p.stderr)
        p = run(["--bogus-option"])
        self.assertEqual(p.returncode, 2)
        p = run(["--resume", "nosuchrun", "--results-dir", self.res])
        self.assertEqual(p.returncode, 2)
        self.assertIn("nosuchrun", p.stderr)
        p = run(["--manifest", self.man2, "--results-dir", self.res, "--allocators", "glibc", "--run-id", "e2e"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("exists", p.stderr)

    def test_a_variant_runs_with_its_own_environment(self):
        """`name = built-in VAR=VALUE` reaches the measured program in every step (mem, time,
        strace), and only under that variant; the report shows it."""
        man = os.path.join(self.tmp, "manifest-variant")
        os.makedirs(man, exist_ok=True)
        with open(os.path.join(man, "t.json"), "w") as f:
            json.dump({"workloads": [{"name": "marked", "timeout": 30, "cmd": [
                "sh", "-c", "[ \"$TM_E2E_MARK\" = on ] || exit 7; echo 'TMBENCH {}'"]}]}, f)
        conf = os.path.join(self.tmp, "variants.conf")
        with open(conf, "w") as f:
            f.write("glibc-marked = glibc TM_E2E_MARK=on\n")
        res = os.path.join(self.tmp, "res-variant")
        p = run(["--manifest", man, "--results-dir", res, "--allocators", "glibc,glibc-marked",
                 "--allocators-file", conf, "--runs", "1", "--blocks", "1", "--no-plots", "--run-id", "v"])
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(res, "v", "summary.json")) as f:
            cells = {c["allocator"]: c for c in json.load(f)["cells"]}
        self.assertEqual(cells["glibc-marked"]["status"], "ok", cells["glibc-marked"].get("reason"))
        self.assertEqual(cells["glibc"]["status"], "FAIL")
        self.assertIn("exit status 7", cells["glibc"]["reason"])
        for step in ("mem-1.json", "time-1.json", "strace.json"):
            with open(os.path.join(res, "v", "raw", "marked", "glibc-marked", step)) as f:
                self.assertEqual(json.load(f)["status"], "ok", step)
        with open(os.path.join(res, "v", "report.md")) as f:
            self.assertIn("`TM_E2E_MARK=on`", f.read())

    def test_shards_split_the_workloads(self):
        seen = []
        for i in (1, 2):
            p = run(["--manifest", self.man, "--allocators", "glibc", "--shard", f"{i}/2", "--dry-run"])
            self.assertEqual(p.returncode, 0, p.stderr)
            seen.append(set(re.search(r"^workloads: (.*)$", p.stdout, re.M).group(1).split()))
        self.assertFalse(seen[0] & seen[1])
        self.assertEqual(len(seen[0] | seen[1]), 8 if self.have_static else 7)

    def test_a_shard_keeps_every_thread_count_of_a_sweep(self):
        man = os.path.join(self.tmp, "manifest-sweep")
        os.makedirs(man, exist_ok=True)
        with open(os.path.join(man, "t.json"), "w") as f:
            json.dump({"workloads": [{"name": n, "cmd": ["true", "{threads}"]} for n in ("s1", "s2", "s3")]}, f)
        seen = []
        for i in (1, 2):
            p = run(["--manifest", man, "--allocators", "glibc", "--threads", "1,2,8", "--shard", f"{i}/2",
                     "--dry-run"])
            self.assertEqual(p.returncode, 0, p.stderr)
            seen.append(re.search(r"^workloads: (.*)$", p.stdout, re.M).group(1).split())
        self.assertEqual(sorted(seen[0] + seen[1]), sorted(f"{n}@{t}" for n in ("s1", "s2", "s3") for t in (1, 2, 8)))
        for names in seen:   # all three counts of a sweep, or none
            bases = [n.split("@")[0] for n in names]
            self.assertTrue(all(bases.count(b) == 3 for b in bases), names)


if __name__ == "__main__":
    unittest.main()
