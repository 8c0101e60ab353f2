# bench/stats.py: the intervals every verdict of the reports rests on.
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402,F401  (puts bench/ on the path)
import stats  # noqa: E402


def runs(centre, spread, n, seed):
    rng = random.Random(seed)
    return [centre * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


class RatioCI(unittest.TestCase):
    def test_separated_samples_give_an_interval_clear_of_one(self):
        fast, slow = runs(1.0, 0.02, 10, 1), runs(1.2, 0.02, 10, 2)
        lo, hi = stats.ratio_ci(fast, slow)
        self.assertLess(hi, 1.0)
        self.assertLess(lo, 1.0 / 1.2 * 1.05)
        self.assertEqual(stats.separated((lo, hi)), -1)
        self.assertEqual(stats.separated(stats.ratio_ci(slow, fast)), 1)

    def test_same_distribution_ties(self):
        a, b = runs(1.0, 0.05, 10, 3), runs(1.0, 0.05, 10, 4)
        ci = stats.ratio_ci(a, b)
        self.assertLessEqual(ci[0], 1.0)
        self.assertGreaterEqual(ci[1], 1.0)
        self.assertEqual(stats.separated(ci), 0)

    def test_interval_contains_the_ratio_of_medians(self):
        a, b = runs(1.0, 0.1, 10, 5), runs(1.05, 0.1, 10, 6)
        lo, hi = stats.ratio_ci(a, b)
        r = sorted(a)[4:6]
        self.assertLessEqual(lo, (sum(r) / 2) / (sum(sorted(b)[4:6]) / 2))
        self.assertGreaterEqual(hi, (sum(r) / 2) / (sum(sorted(b)[4:6]) / 2))

    def test_too_few_runs_have_no_interval(self):
        self.assertIsNone(stats.ratio_ci([1.0], [1.0, 1.1]))
        self.assertIsNone(stats.ratio_ci([1.0, None], [1.0, 1.1]))
        self.assertEqual(stats.separated(None), 0)

    def test_reproducible(self):
        a, b = runs(1.0, 0.1, 10, 7), runs(1.1, 0.1, 10, 8)
        self.assertEqual(stats.ratio_ci(a, b), stats.ratio_ci(list(a), list(b)))


class Ranking(unittest.TestCase):
    def test_clear_winner(self):
        rk = stats.ranking({"a": runs(1.0, 0.01, 10, 1), "b": runs(1.3, 0.01, 10, 2), "c": runs(1.5, 0.01, 10, 3)})
        self.assertEqual(rk, {"best": "a", "clear": True, "ties": []})

    def test_tie_names_the_overlapping(self):
        rk = stats.ranking({"a": runs(1.0, 0.1, 10, 1), "b": runs(1.01, 0.1, 10, 2), "c": runs(2.0, 0.01, 10, 3)})
        self.assertFalse(rk["clear"])
        self.assertEqual(sorted([rk["best"]] + rk["ties"]), ["a", "b"])

    def test_single_runs_are_ties(self):
        rk = stats.ranking({"a": [1.0], "b": [2.0]})
        self.assertEqual((rk["best"], rk["clear"], rk["ties"]), ("a", False, ["b"]))


class GeomeanCI(unittest.TestCase):
    def table(self, factor, spread):
        return {f"w{i}": {"glibc": runs(1.0, spread, 10, 10 * i), "x": runs(factor, spread, 10, 10 * i + 1)}
                for i in range(6)}

    def test_contains_the_geomean_and_separates(self):
        cis = stats.geomean_cis(self.table(0.8, 0.03), "glibc")
        lo, hi = cis["x"]
        self.assertLess(lo, 0.8 * 1.03)
        self.assertGreater(hi, 0.8 * 0.97)
        self.assertLess(hi, 1.0)
        self.assertEqual(cis["glibc"], (1.0, 1.0))

    def test_relative_to_best(self):
        cis = stats.geomean_cis(self.table(0.8, 0.03), None)
        self.assertEqual(cis["x"], (1.0, 1.0))
        self.assertGreater(cis["glibc"][0], 1.1)

    def test_relative_to_best_peer(self):
        # each allocator against the best of the others: a lead shows below 1, which the
        # ratio to the best (1.0 for the best itself) cannot
        cis = stats.geomean_cis(self.table(0.8, 0.03), stats.PEER)
        lo, hi = cis["x"]
        self.assertLess(lo, 0.8 * 1.03)
        self.assertGreater(hi, 0.8 * 0.97)
        self.assertLess(hi, 1.0)
        self.assertGreater(cis["glibc"][0], 1.0 / 0.8 * 0.97)
        # a third allocator as fast as x: x's best peer is now y, and the two tie
        t = self.table(0.8, 0.03)
        for i, row in enumerate(t.values()):
            row["y"] = runs(0.8, 0.03, 10, 10 * i + 2)
        cis = stats.geomean_cis(t, stats.PEER)
        for a in ("x", "y"):
            self.assertLess(cis[a][0], 1.0)
            self.assertGreater(cis[a][1], 1.0)
        self.assertGreater(cis["glibc"][0], 1.1)

    def test_peer_needs_another_allocator(self):
        t = {"w0": {"x": runs(1.0, 0.03, 10, 1)}}
        self.assertEqual(stats.geomean_cis(t, stats.PEER), {"x": None})

    def test_missing_runs_give_none(self):
        t = self.table(0.8, 0.03)
        t["w0"]["x"] = [0.8]
        self.assertEqual(stats.geomean_cis(t, "glibc"), {"glibc": None, "x": None})


if __name__ == "__main__":
    unittest.main()
