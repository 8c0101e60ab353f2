"""tinymalloc under ThreadSanitizer beyond the unit tests: every synthetic and classic
workload, built against the prefixed tsan library (make workloads-tsan), runs at the tiny
scale, and the threaded ones at the quick scale too; each must exit 0 with no
ThreadSanitizer report. A deliberately racy program on a tinymalloc block must be reported,
so a pass means something.
"""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.environ.get("TM_ROOT") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "build", "tsan", "workloads")
LIB = os.path.join(ROOT, "build", "tsan")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import manifest  # noqa: E402

ENV = dict(os.environ, TSAN_OPTIONS="exitcode=66 halt_on_error=0")
ENV.pop("LD_PRELOAD", None)


def workloads():
    """The programs of workloads/synthetic, thread sweeps at 2 threads."""
    paths = [os.path.join(ROOT, "bench", "manifest", f"{g}.json") for g in ("synthetic", "classic")]
    return manifest.load(paths, threads=[2])


def run(cmd, timeout=300):
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="replace", timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class TsanWorkloads(unittest.TestCase):
    def check(self, w, scale):
        exe = os.path.join(BIN, os.path.basename(w["cmd"][0]))
        if not os.path.exists(exe):
            self.fail(f"{exe} missing: run `make workloads-tsan`")
        cmd = [exe] + w["cmd"][1:] + w["scales"][scale]
        rc, out, err = run(cmd)
        self.assertNotIn("WARNING: ThreadSanitizer", err, err[-3000:])
        self.assertEqual(rc, 0, f"{' '.join(cmd)}: exit {rc}\n{err[-2000:]}")
        self.assertIn("TMBENCH ", out)


def threaded(w):
    return (w.get("threads") or 1) > 1


for _w in workloads():
    _name = _w["name"].replace("-", "_").replace("@", "_at_")
    setattr(TsanWorkloads, f"test_{_name}_tiny", lambda self, w=_w: self.check(w, "tiny"))
    if threaded(_w):
        setattr(TsanWorkloads, f"test_{_name}_quick", lambda self, w=_w: self.check(w, "quick"))


class TsanSeesRaces(unittest.TestCase):
    def test_a_race_on_a_tinymalloc_block_is_reported(self):
        with tempfile.TemporaryDirectory() as d:
            exe = os.path.join(d, "race")
            subprocess.run(["cc", "-fsanitize=thread", "-g", "-O1", "-include",
                            os.path.join(ROOT, "tests", "tm_prefix.h"),
                            os.path.join(ROOT, "tests", "tinymalloc", "tsan_race.c"), "-o", exe,
                            "-L" + LIB, "-ltinymalloc", "-Wl,-rpath," + LIB, "-pthread"],
                           check=True)
            rc, _, err = run([exe])
            self.assertEqual(rc, 66, err[-2000:])
            self.assertIn("WARNING: ThreadSanitizer: data race", err)
            self.assertIn(" writer ", err)  # the writer thread's access is named


if __name__ == "__main__":
    unittest.main()
