# scripts/tuning/verify.py and search.py through scripts/tune-slabs: the profile and the
# verification are bench runs (bench/run.py) of tinymalloc variants, a variant's configuration
# reaches the measured program (the profile files it writes prove it from inside), the
# decision between candidates goes by intervals, and a program without slab-tier allocation
# gets "keep the defaults".
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import allocators  # noqa: E402
from tuning import cli, search, verify  # noqa: E402

WL = "size-classes"
NEED = [p for p in (os.path.join(ROOT, "build", "libtinymalloc.so"), os.path.join(ROOT, "build", "workloads", WL),
                    "/usr/bin/time") if not os.path.exists(p)] + \
    [t for t in ("hyperfine", "strace") if not shutil.which(t)]



def read_text(path):
    with open(path) as f:
        return f.read()


def load_json(path):
    return json.loads(read_text(path))


@unittest.skipIf(NEED, "missing: " + ", ".join(NEED))
class Verify(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tm-tune-verify-")
        cls.work = os.path.join(cls.tmp, "work")
        cls.out = os.path.join(cls.tmp, "out", f"{WL}.md")
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            cls.rc = cli.main(["--workload", WL, "--scale", "tiny", "--verify", "--runs", "3", "--seed", "7",
                               "--no-build", "--workdir", cls.work, "--out", cls.out])
        cls.stdout, cls.stderr = so.getvalue(), se.getvalue()
        outdir = os.path.dirname(cls.out)
        runs = [d for d in os.listdir(outdir) if os.path.isdir(os.path.join(outdir, d))] if os.path.isdir(outdir) else []
        cls.run_dir = os.path.join(outdir, runs[0]) if len(runs) == 1 else None

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_verified(self):
        self.assertEqual(self.rc, 0, self.stderr[-2000:])
        self.assertIn("TINYMALLOC_CONF=", self.stdout)   # the recommendation stays on stdout
        self.assertNotIn("[   1/", self.stdout)           # the runner's progress went to stderr

    def test_profile_was_a_bench_run_and_the_conf_reached_the_program(self):
        prof = [d for d in os.listdir(self.work) if d.startswith("profile-")]
        self.assertEqual(len(prof), 1)
        plan = load_json(os.path.join(self.work, prof[0], "plan.json"))
        self.assertEqual(plan["options"]["runs"], 0)
        self.assertTrue(plan["allocators"][0]["env"]["TINYMALLOC_CONF"].startswith("profile:"))
        # only tinymalloc, reading TINYMALLOC_CONF inside the program, writes these files
        files = [f for f in os.listdir(os.path.join(self.work, "profiles")) if f.endswith(".json")]
        self.assertTrue(files)

    def test_verification_is_one_bench_run_of_the_candidates(self):
        self.assertTrue(self.run_dir, "no run folder beside the report")
        plan = load_json(os.path.join(self.run_dir, "plan.json"))
        al = {a["name"]: a for a in plan["allocators"]}
        self.assertIn("tm-default", al)
        self.assertIn("tm-tuned", al)
        self.assertGreaterEqual(len(al), 4)   # the neighbours are measured too
        self.assertEqual({a["lib"] for a in al.values()}, {al["tm-default"]["lib"]})   # one frozen copy
        self.assertNotIn("TINYMALLOC_CONF", al["tm-default"].get("env") or {})
        raw = load_json(os.path.splitext(self.out)[0] + ".json")
        self.assertEqual(al["tm-tuned"]["env"]["TINYMALLOC_CONF"], raw["recommendation"]["conf"])
        self.assertEqual({c["name"] for c in raw["candidates"]}, set(al) - {"tm-default"})
        self.assertEqual(plan["options"]["runs"], 3)
        for a in al:
            for step in ("time-1.json", "mem-1.json", "strace.json"):
                rec = load_json(os.path.join(self.run_dir, "raw", WL, a, step))
                self.assertEqual(rec["status"], "ok", (a, step, rec.get("reason")))

    def test_report_decides_by_intervals(self):
        md = read_text(self.out)
        self.assertIn("## Decision", md)
        self.assertRegex(md, r"\| tm-tuned \| [\d.]+ \([\d.]+-[\d.]+\) (lower|higher|tie) \| ")
        self.assertIn("/report.md)", md)
        raw = load_json(os.path.splitext(self.out)[0] + ".json")
        variant = os.path.splitext(self.out)[0] + ".allocators"
        if raw["decision"]["choice"]:
            self.assertIn("**chosen**", md)
            self.assertIn("measured: tm-", self.stdout)
            # the winner feeds the bench registry as tinymalloc-tuned
            a = allocators.resolve("tinymalloc-tuned", [variant])[0]
            self.assertEqual(a["base"], "tinymalloc")
            self.assertEqual(a["env"], {"TINYMALLOC_CONF": raw["decision"]["choice"][1]})
        else:
            self.assertIn("**Keep the defaults**", md)
            self.assertIn("measured: keep the defaults", self.stdout)
            self.assertFalse(os.path.exists(variant))

    def test_report_gives_the_noise(self):
        rep = read_text(self.out)
        self.assertIn("## The machine's noise in this run", rep)
        self.assertRegex(rep, r"\| size-classes \| [0-9.]+ ms, [0-9.]+ % \(n=3\) \| [0-9.]+-[0-9.]+ MiB \(\d+ runs\) \|")
        self.assertRegex(rep, r"Of \d+ cells \(workload x variant\), \d+ (?:was|were) measured while")

    def test_a_sweep_needs_its_count(self):
        with self.assertRaises(verify.TuneError) as cm:
            verify.resolve_workloads("medium-mt", "tiny", one=True)
        self.assertEqual(cm.exception.code, 2)
        self.assertIn("medium-mt@1", str(cm.exception))

    def test_a_swept_count_runs(self):
        # random-linear@1 once stopped every tuning and overhead run: '@' in the run id
        if not os.path.exists(os.path.join(ROOT, "build", "workloads", "medium-mt")):
            self.skipTest("missing: build/workloads/medium-mt")
        out = os.path.join(self.tmp, "overhead", "overhead.md")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as se:
            rc = cli.main(["--profile-overhead", "medium-mt@1", "--scale", "tiny", "--runs", "2", "--seed", "7",
                           "--no-build", "--out", out])
        self.assertEqual(rc, 0, se.getvalue()[-2000:])
        runs = [d for d in os.listdir(os.path.dirname(out)) if d.startswith("overhead-")]
        self.assertEqual(len(runs), 1, runs)
        self.assertTrue(runs[0].startswith("overhead-medium-mt-t1-"), runs)
        self.assertRegex(read_text(out), r"\| medium-mt@1 \| [0-9.]+ \(")


BIG_ONLY = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) { /* 1 MiB blocks only: nothing for the slab classes */
    for (int i = 0; i < 200; i++) {
        char *p = malloc(1 << 20);
        if (!p) return 1;
        memset(p, i, 4096);
        free(p);
    }
    printf("TMBENCH {\"ops\": 200}\n");
    return 0;
}
"""


@unittest.skipIf(NEED or not shutil.which("cc"), "missing: " + ", ".join(NEED + ([] if shutil.which("cc") else ["cc"])))
class Declines(unittest.TestCase):
    def test_no_slab_allocation_keeps_the_defaults(self):
        tmp = tempfile.mkdtemp(prefix="tm-tune-decline-")
        try:
            exe = os.path.join(tmp, "big-only")
            subprocess.run(["cc", "-O1", "-x", "c", "-", "-o", exe], input=BIG_ONLY, text=True, check=True)
            man = os.path.join(tmp, "manifest.json")
            with open(man, "w") as f:
                json.dump({"workloads": [{"name": "big-only", "cmd": [exe], "timeout": 30, "threads": 1,
                                          "check": {"exit": 0, "stdout_regex": "^TMBENCH "}}]}, f)
            out = os.path.join(tmp, "out", "big-only.md")
            so, se = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
                rc = cli.main(["--workload", "big-only", "--manifest", man, "--scale", "tiny", "--verify",
                               "--runs", "2", "--workdir", os.path.join(tmp, "work"), "--out", out])
            self.assertEqual(rc, 0, se.getvalue()[-2000:])
            self.assertIn("measured: keep the defaults", so.getvalue())
            md = read_text(out)
            self.assertIn("**Keep the defaults**", md)
            self.assertIn("no class-sensitive allocation", md)
            self.assertFalse(os.path.exists(os.path.join(tmp, "out", "big-only.allocators")))
            # declined before measuring: the only bench run is the profile's
            self.assertEqual([d for d in os.listdir(os.path.join(tmp, "out")) if os.path.isdir(os.path.join(tmp, "out", d))], [])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def cell(times, rss, mmap=10):
    return {"status": "ok", "times": times, "time_median_s": sorted(times)[len(times) // 2],
            "rss_runs_kb": rss, "rss_max_kb": sorted(rss)[len(rss) // 2], "mmap": mmap}


class Decide(unittest.TestCase):
    """search.decide on made-up cells: a win must clear its interval, the other objectives must
    not be worse, and ties keep the defaults."""
    BASE = ([1.00, 1.01, 0.99, 1.02, 0.98], [1000, 1002, 998, 1001, 999])

    def test_choice_and_reasons(self):
        by_wl = {"w": {"tm-default": cell(*self.BASE),
                       "tm-fast-fat": cell([0.80, 0.81, 0.79, 0.80, 0.82], [1500, 1502, 1498, 1501, 1499]),
                       "tm-fast": cell([0.90, 0.91, 0.89, 0.90, 0.92], [1000, 1003, 997, 1000, 1001]),
                       "tm-same": cell([1.00, 1.02, 0.98, 1.01, 0.99], [1000, 1001, 999, 1002, 998])}}
        d = search.decide(by_wl, [("tm-fast-fat", "a"), ("tm-fast", "b"), ("tm-same", "c")], "time")
        self.assertEqual(d["choice"], ("tm-fast", "b"))
        why = {n: w for n, _, _, w in d["assessed"]}
        self.assertEqual(why["tm-fast-fat"], "rss higher")
        self.assertEqual(why["tm-same"], "time tie")
        self.assertAlmostEqual(d["level"], 1 - 0.05 / 3)
        # on RSS the fat one is out, the others tie: keep the defaults
        self.assertIsNone(search.decide(by_wl, [("tm-fast-fat", "a"), ("tm-same", "c")], "rss")["choice"])

    def test_a_mix_must_not_lose_anywhere(self):
        by_wl = {"a": {"tm-default": cell(*self.BASE), "tm-x": cell([0.70, 0.71, 0.69, 0.70, 0.72], self.BASE[1])},
                 "b": {"tm-default": cell(*self.BASE), "tm-x": cell([1.20, 1.21, 1.19, 1.20, 1.22], self.BASE[1])}}
        d = search.decide(by_wl, [("tm-x", "x")], "time")
        self.assertIsNone(d["choice"])
        self.assertEqual(d["assessed"][0][3], "time worse on b")

    def test_syscalls_by_count(self):
        by_wl = {"w": {"tm-default": cell(*self.BASE, mmap=100), "tm-few": cell(*self.BASE, mmap=50),
                       "tm-near": cell(*self.BASE, mmap=97)}}
        d = search.decide(by_wl, [("tm-near", "n"), ("tm-few", "f")], "syscalls")
        self.assertEqual(d["choice"], ("tm-few", "f"))


if __name__ == "__main__":
    unittest.main()
