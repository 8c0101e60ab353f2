"""tune-slabs' recommendation: exact answers on synthetic histograms whose best answer is known,
agreement with brute force, the allocator's class arithmetic, preallocation, and the
configuration string as the allocator itself reads it."""
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from tuning import classes as C  # noqa: E402
from tuning import profile as P  # noqa: E402

LIB = os.path.join(ROOT, "build", "libtinymalloc.so")


def prof_of(hist):
    """{size: (count, peak)} -> Profile."""
    rows = [[s, c, p, 0, 0, 0] for s, (c, p) in sorted(hist.items())]
    return P.parse({"format": P.FORMAT, "pid": 1, "ppid": 0, "exe": "t", "ticks": 1, "sizes": rows})


def brute(hist, top, budget, weight, cands, max_ratio=0):
    """Least objective over every subset of cands (top always in) of at most budget classes."""
    inner = [c for c in sorted(set(cands)) if c < top]
    best = None
    for k in range(0, budget):
        for sub in itertools.combinations(inner, k):
            cl = list(sub) + [top]
            if max_ratio and (cl[0] > 16 * max_ratio or any(b > max_ratio * a for a, b in zip(cl, cl[1:]))):
                continue
            if any(s > top for s in hist):
                continue
            v = C.objective(cl, hist, weight)
            if best is None or v < best[0]:
                best = (v, cl)
    return best


class DefaultClasses(unittest.TestCase):
    def test_default_list(self):
        d = C.default_classes()
        self.assertEqual(len(d), 37)
        self.assertEqual(d[:8], list(range(16, 129, 16)))
        self.assertEqual(d[8:12], [160, 192, 224, 256])
        self.assertEqual(d[12:18], [288, 320, 384, 448, 512, 576])
        self.assertEqual(d[-6:], [4096, 4608, 5120, 6144, 7168, 8192])

    def test_other_limits(self):
        self.assertEqual(C.default_classes(64, 512), [16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256,
                                                      288, 320, 384, 448, 512])
        self.assertEqual(C.default_classes(small_max=16384)[-1], 16384)

    @unittest.skipUnless(os.path.exists(LIB), "build/libtinymalloc.so not built")
    def test_matches_allocator(self):
        """The Python mirror of derive_classes() gives the allocator's own list (stats:json)."""
        for conf, want in (("", C.default_classes()), ("tiny_max:64,small_max:1024", C.default_classes(64, 1024))):
            with tempfile.TemporaryDirectory() as d:
                env = dict(os.environ, LD_PRELOAD=LIB,
                           TINYMALLOC_CONF=",".join(x for x in (conf, f"stats:json,stats_file:{d}/s.json") if x))
                subprocess.run(["/bin/true"], env=env, check=True)
                with open(os.path.join(d, "s.json")) as f:
                    got = [c["size"] for c in json.load(f)["classes"]]
            self.assertEqual(got, want, conf)

    def test_class_of(self):
        d = C.default_classes()
        self.assertEqual(C.class_of(d, 0), 16)
        self.assertEqual(C.class_of(d, 16), 16)
        self.assertEqual(C.class_of(d, 17), 32)
        self.assertEqual(C.class_of(d, 129), 160)
        self.assertEqual(C.class_of(d, 8192), 8192)
        self.assertIsNone(C.class_of(d, 8193))

    def test_committed_bytes(self):
        self.assertEqual(C.committed_bytes(16, 0), 0)
        self.assertEqual(C.committed_bytes(16, 1), 8192)          # one carve of 8 KiB
        self.assertEqual(C.committed_bytes(16, 512), 8192)
        self.assertEqual(C.committed_bytes(16, 513), 16384)
        self.assertEqual(C.committed_bytes(16, 4096), 65536)      # one full page
        self.assertEqual(C.committed_bytes(48, 1365), 65536)      # 1365 * 48 = 65520, up to 4 KiB
        self.assertEqual(C.committed_bytes(16384, 1), 16384)      # at least one block per carve
        self.assertEqual(C.committed_bytes(5000, 13), 65536)      # 13 * 5000 = 65000 -> 64 KiB
        self.assertEqual(C.committed_bytes(5000, 14), 65536 + 8192)


class KnownAnswers(unittest.TestCase):
    def test_exact_sizes_fit(self):
        """Enough classes: every size gets its own class (rounded to 16), zero rounding waste."""
        hist = {32: (100, 10), 112: (50, 5), 1008: (7, 7)}
        cl, cost = C.optimise(hist, 1008, 8, "count", max_ratio=0)
        self.assertEqual(cl, [32, 112, 1008])
        self.assertEqual(cost, 0)

    def test_rounding_to_16(self):
        hist = {24: (10, 1), 100: (3, 1)}
        cl, cost = C.optimise(hist, 112, 8, "count", max_ratio=0)
        self.assertEqual(cl, [32, 112])
        self.assertEqual(cost, 10 * 8 + 3 * 12)

    def test_one_class(self):
        cl, cost = C.optimise({10: (5, 1), 50: (5, 1)}, 64, 1, "count", max_ratio=0)
        self.assertEqual(cl, [64])
        self.assertEqual(cost, 5 * 54 + 5 * 14)

    def test_heavy_sizes_win(self):
        """Two classes for 16 (1000x), 48 (1x), 64 (1000x): 48 shares 64's class."""
        cl, cost = C.optimise({16: (1000, 1), 48: (1, 1), 64: (1000, 1)}, 64, 2, "count", max_ratio=0)
        self.assertEqual(cl, [16, 64])
        self.assertEqual(cost, 16)

    def test_peak_merges_rare_size(self):
        """By peak (page level) a size with one live block does not get a page of its own; by
        count it does, as that wastes nothing per request."""
        hist = {1008: (1, 1), 1024: (5000, 999)}   # 999 + 1 blocks fit the same carved 8 KiB
        cl, _ = C.optimise(hist, 1024, 4, "peak", max_ratio=0)
        self.assertEqual(cl, [1024])
        cl, cost = C.optimise(hist, 1024, 4, "count", max_ratio=0)
        self.assertEqual(cl, [1008, 1024])
        self.assertEqual(cost, 0)

    def test_default_classes_optimal_on_their_own_sizes(self):
        """A histogram on exactly the default class sizes: no waste with as many classes."""
        d = C.default_classes()
        hist = {c: (1000, 100) for c in d}
        cl, cost = C.optimise(hist, 8192, len(d), "count", max_ratio=2, fillers=d)
        self.assertEqual(cl, d)
        self.assertEqual(cost, 0)

    def test_tuned_never_worse_than_default(self):
        rng = random.Random(3)
        d = C.default_classes()
        for weight in ("count", "peak"):
            for _ in range(5):
                hist = {s: (rng.randint(1, 500), 0) for s in rng.sample(range(1, 8193), 60)}
                hist = {s: (c, rng.randint(1, c)) for s, (c, _) in hist.items()}
                _, cost = C.optimise(hist, 8192, len(d), weight, max_ratio=2, fillers=d)
                self.assertLessEqual(cost, C.objective(d, hist, weight), weight)

    def test_ratio_constraint(self):
        hist = {16: (1, 1), 8192: (1, 1)}
        cl, _ = C.optimise(hist, 8192, 32, "count", max_ratio=0)
        self.assertEqual(cl, [16, 8192])
        cl, _ = C.optimise(hist, 8192, 32, "count", max_ratio=2, fillers=C.default_classes())
        self.assertLessEqual(cl[0], 32)
        self.assertTrue(all(b <= 2 * a for a, b in zip(cl, cl[1:])), cl)
        self.assertEqual(cl[-1], 8192)
        with self.assertRaises(C.Infeasible):
            C.optimise(hist, 8192, 3, "count", max_ratio=2, fillers=C.default_classes())


class BruteForce(unittest.TestCase):
    def test_matches_brute_force_all_lists(self):
        """Without the ratio constraint the DP's optimum equals the best of EVERY class list
        (all subsets of the multiples of 16 up to the top)."""
        rng = random.Random(11)
        top = 192
        allc = list(range(16, top + 1, 16))
        for trial in range(12):
            sizes = rng.sample(range(0, top + 1), rng.randint(1, 9))
            hist = {}
            for s in sizes:
                c = rng.randint(1, 3000)
                hist[s] = (c, rng.randint(1, c))
            for weight in ("count", "peak"):
                for budget in (1, 2, 3, 5):
                    cl, cost = C.optimise(hist, top, budget, weight, max_ratio=0)
                    bcost, bcl = brute(hist, top, budget, weight, allc)
                    self.assertEqual(cost, bcost, (trial, weight, budget, cl, bcl))
                    self.assertEqual(C.objective(cl, hist, weight), cost)
                    self.assertLessEqual(len(cl), budget)

    def test_matches_brute_force_with_ratio(self):
        rng = random.Random(5)
        top = 512
        fill = C.default_classes(small_max=top)
        for trial in range(6):
            hist = {}
            for s in rng.sample(range(1, top + 1), 6):
                c = rng.randint(1, 1000)
                hist[s] = (c, rng.randint(1, c))
            cands = {C.round16(s) for s in hist} | set(fill) | {top}
            for weight in ("count", "peak"):
                for budget in (6, 8, 10):
                    try:
                        cl, cost = C.optimise(hist, top, budget, weight, max_ratio=2, fillers=fill)
                    except C.Infeasible:
                        self.assertIsNone(brute(hist, top, budget, weight, cands, 2))
                        continue
                    bcost, _ = brute(hist, top, budget, weight, cands, 2)
                    self.assertEqual(cost, bcost, (trial, weight, budget))


class Prealloc(unittest.TestCase):
    def test_peak_fits_whole_pages(self):
        prof = prof_of({24: (5000, 2100), 40: (10, 10), 1000: (3, 3)})
        counts, pages, need, capped = C.prealloc_counts([32, 48, 1024, 8192], prof, 64 << 20)
        self.assertEqual(need, [2100, 10, 3, 0])
        self.assertEqual(pages, [2, 1, 1, 0])           # 2048 blocks of 32 per page
        self.assertEqual(counts, [4096, 1365, 64, 0])
        self.assertFalse(capped)

    def test_budget_caps(self):
        prof = prof_of({16: (10 ** 6, 4096 * 100), 8192: (100, 80)})   # 100 pages + 10 pages
        counts, pages, _, capped = C.prealloc_counts([16, 8192], prof, 11 * C.PAGE)
        self.assertTrue(capped)
        self.assertLessEqual(sum(pages), 11)
        self.assertGreaterEqual(min(pages), 1)

    def test_conf_string(self):
        self.assertEqual(C.conf_string([16, 64], [4096, 1024]), "classes:16/64,prealloc:4096/1024")


class Recommend(unittest.TestCase):
    def sample(self):
        prof, _ = P.load([os.path.join(ROOT, "tests", "tuning", "samples", "single.json")])
        return prof

    def test_recommend_single(self):
        rec = C.recommend(self.sample())
        self.assertIsNone(C.check_classes(rec["classes"]))
        self.assertEqual(rec["small_max"], 12000)     # auto: covers the 12000-byte requests
        self.assertEqual(rec["classes"][-1], 12000)
        self.assertLessEqual(rec["tuned"]["frag_peak"], rec["default"]["frag_peak"])
        self.assertLess(rec["tuned"]["huge_requests"], rec["default"]["huge_requests"])
        self.assertEqual(len(rec["prealloc"]), len(rec["classes"]))
        self.assertTrue(rec["conf"].startswith("classes:"))

    def test_small_max_fixed(self):
        rec = C.recommend(self.sample(), small_max=8192, budget=10, weight="count")
        self.assertEqual(rec["classes"][-1], 8192)
        self.assertLessEqual(len(rec["classes"]), 10)

    @unittest.skipUnless(os.path.exists(LIB), "build/libtinymalloc.so not built")
    def test_allocator_accepts_conf(self):
        """The printed string is taken by the allocator as it is: no warning, same classes and
        counts in its statistics."""
        rec = C.recommend(self.sample())
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, LD_PRELOAD=LIB, TINYMALLOC_CONF=rec["conf"] + f",stats:json,stats_file:{d}/s.json")
            p = subprocess.run(["/bin/true"], env=env, stderr=subprocess.PIPE, text=True)
            self.assertEqual(p.returncode, 0)
            self.assertNotIn("TINYMALLOC_CONF", p.stderr)
            with open(os.path.join(d, "s.json")) as f:
                st = json.load(f)
        self.assertEqual([c["size"] for c in st["classes"]], rec["classes"])
        self.assertEqual([c["prealloc"] for c in st["classes"]], rec["prealloc"])


class Cli(unittest.TestCase):
    TOOL = os.path.join(ROOT, "scripts", "tune-slabs")

    def run_tool(self, *args):
        return subprocess.run([sys.executable, self.TOOL] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)

    def test_prints_conf(self):
        p = self.run_tool(os.path.join(ROOT, "tests", "tuning", "samples", "build"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^TINYMALLOC_CONF=classes:[0-9/]+,prealloc:[0-9/]+$")

    def test_json(self):
        p = self.run_tool("--json", "--weight", "count", os.path.join(ROOT, "tests", "tuning", "samples", "single.json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        rec = json.loads(p.stdout)
        self.assertEqual(rec["weight"], "count")
        self.assertIn("frag_count", rec["tuned"])

    def test_exit_codes(self):
        self.assertEqual(self.run_tool().returncode, 2)
        self.assertEqual(self.run_tool("--classes", "99", "x.json").returncode, 2)
        self.assertEqual(self.run_tool("/nonexistent/profile.json").returncode, 3)
        self.assertEqual(self.run_tool("--workload", "no-such-workload").returncode, 2)
        p = self.run_tool("--classes", "2", os.path.join(ROOT, "tests", "tuning", "samples", "single.json"))
        self.assertEqual(p.returncode, 2)      # infeasible under the ratio constraint
        self.assertIn("max-ratio", p.stderr)
        self.assertEqual(self.run_tool("--help").returncode, 0)


if __name__ == "__main__":
    unittest.main()
