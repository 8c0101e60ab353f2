"""Helpers shared by the bench harness tests (not a test file itself)."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "tests", "bench", "samples")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
sys.path.insert(0, os.path.join(ROOT, "bench"))


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        return f.read()


def build_fixture(out_dir):
    """Compile tests/bench/fixture.c into out_dir; None when there is no C compiler."""
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        return None
    exe = os.path.join(out_dir, "fixture")
    subprocess.run([cc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", exe,
                    os.path.join(ROOT, "tests", "bench", "fixture.c")], check=True)
    return exe
