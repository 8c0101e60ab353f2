"""The profile format (tinymalloc-profile-1): the committed samples read back, malformed files
are refused with a message naming the problem, merging sums and takes the max of peak_live,
and a merged profile written out reads back the same."""
import copy
import json
import os
import sys
import tempfile
import unittest

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from tuning import profile as P  # noqa: E402

SAMPLES = os.path.join(ROOT, "tests", "tuning", "samples")
GOOD = {"format": "tinymalloc-profile-1", "pid": 10, "ppid": 1, "exe": "/bin/x", "ticks": 100,
        "sizes": [[24, 50, 10, 2, 400, 30], [40, 12, 12, 12, 0, 0], [131072, 3, 1, 0, 5, 1, 1]]}


class ReadBack(unittest.TestCase):
    def test_single_sample(self):
        prof = P.load_file(os.path.join(SAMPLES, "single.json"))
        self.assertEqual(prof.processes[0]["pid"], 4242)
        self.assertEqual(prof.processes[0]["exe"], "/usr/bin/sample")
        r = prof.rows[(24, False)]
        self.assertEqual((r.count, r.peak_live, r.live_at_exit), (50000, 3000, 12))
        pooled = [r for r in prof.sizes() if r.pooled]
        self.assertEqual([r.size for r in pooled], [131072, 1 << 20])
        self.assertEqual(prof.total_count(), prof.ticks)

    def test_fields(self):
        prof = P.parse(copy.deepcopy(GOOD))
        r = prof.rows[(24, False)]
        self.assertEqual(r.freed, 48)
        self.assertAlmostEqual(r.mean_lifetime(), 400 / 48)
        self.assertIsNone(prof.rows[(40, False)].mean_lifetime())
        self.assertTrue(prof.rows[(131072, True)].pooled)

    def test_round_trip(self):
        prof = P.parse(copy.deepcopy(GOOD))
        self.assertEqual(prof.to_json(), GOOD)


class Malformed(unittest.TestCase):
    def bad(self, mutate, needle):
        obj = copy.deepcopy(GOOD)
        mutate(obj)
        with self.assertRaises(P.ProfileError) as cm:
            P.parse(obj, "f.json")
        self.assertIn(needle, str(cm.exception))
        self.assertIn("f.json", str(cm.exception))

    def test_format(self):
        self.bad(lambda o: o.update(format="tinymalloc-profile-0"), "format")

    def test_ticks(self):
        self.bad(lambda o: o.update(ticks=-1), "ticks")

    def test_short_row(self):
        self.bad(lambda o: o["sizes"].append([1, 2, 3]), "a row is")

    def test_peak_above_count_allowed(self):
        """A forked child keeps inherited blocks live with a count started afresh."""
        obj = copy.deepcopy(GOOD)
        obj["sizes"].append([64, 0, 2, 2, 0, 0])
        self.assertEqual(P.parse(obj).rows[(64, False)].peak_live, 2)

    def test_short_above_count(self):
        self.bad(lambda o: o["sizes"].append([64, 1, 1, 0, 0, 2]), "short_lived 2 exceeds count 1")

    def test_live_above_peak(self):
        self.bad(lambda o: o["sizes"].append([64, 5, 2, 3, 0, 0]), "live_at_exit 3 exceeds peak_live 2")

    def test_duplicate(self):
        self.bad(lambda o: o["sizes"].append([24, 1, 1, 0, 0, 0]), "appears twice")

    def test_pooled_not_power_of_two(self):
        self.bad(lambda o: o["sizes"].append([100000, 1, 1, 0, 0, 0, 1]), "power of two")

    def test_big_size_not_pooled(self):
        self.bad(lambda o: o["sizes"].append([70000, 1, 1, 0, 0, 0]), "pooled row")

    def test_not_json(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"format": "tinymalloc-profile-1", "sizes": [[24, ')
        try:
            with self.assertRaises(P.ProfileError) as cm:
                P.load_file(f.name)
            self.assertIn("not JSON", str(cm.exception))
        finally:
            os.unlink(f.name)


class Merge(unittest.TestCase):
    def test_build_samples(self):
        prof, files = P.load([os.path.join(SAMPLES, "build")])
        self.assertEqual(len(files), 4)
        self.assertEqual(len(prof.processes), 4)
        r = prof.rows[(24, False)]
        self.assertEqual(r.count, 300 + 9000 + 7000 + 500)
        self.assertEqual(r.peak_live, 2600)                     # max over processes
        self.assertEqual(r.peak_live_sum, 120 + 2000 + 2600 + 50)
        self.assertEqual(r.live_at_exit, 5 + 10 + 10 + 0)
        self.assertEqual(prof.rows[(1000, False)].peak_live, 64)
        self.assertEqual(prof.rows[(262144, True)].count, 3)
        self.assertEqual(prof.ticks, sum(P.load_file(f).ticks for f in files))

    def test_exe_filter(self):
        prof, _ = P.load([os.path.join(SAMPLES, "build")], exe_filter=r"/cc1$")
        self.assertEqual(len(prof.processes), 2)
        self.assertEqual(prof.rows[(24, False)].count, 16000)
        self.assertNotIn((100, False), prof.rows)
        with self.assertRaises(P.ProfileError):
            P.load([os.path.join(SAMPLES, "build")], exe_filter="nothing-like-this")

    def test_merged_written_reads_back(self):
        prof, _ = P.load([os.path.join(SAMPLES, "build", "*.json")])
        obj = json.loads(json.dumps(prof.to_json()))
        self.assertTrue(obj["merged"])
        again = P.parse(obj, "merged.json")
        self.assertEqual([r.as_list() for r in again.sizes()], [r.as_list() for r in prof.sizes()])
        self.assertEqual(again.rows[(24, False)].peak_live_sum, prof.rows[(24, False)].peak_live_sum)
        self.assertEqual(len(again.processes), 4)
        # merging a merged profile with nothing else changes nothing
        self.assertEqual(P.merge([again]).to_json(), again.to_json())

    def test_empty(self):
        with self.assertRaises(P.ProfileError):
            P.load([os.path.join(SAMPLES, "no-such-folder", "*.json")])


if __name__ == "__main__":
    unittest.main()
