"""TINYMALLOC_CONF=help (options.c): the table it prints is the one the parser checks against,
and the README's copy of it is current (scripts/conf_table.py)."""
import os
import re
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import conf_table  # noqa: E402

# "[a power of two, ]LO to HI[: why]", LO possibly "other_key (value)"
RANGE = re.compile(r"^(?:a power of two, |a multiple of 16, )?(?:\w+ \()?(\w+)\)? to (\w+)(?:: .*)?$")


def run(conf):
    """stderr of a program started with TINYMALLOC_CONF=conf."""
    env = dict(os.environ, TINYMALLOC_CONF=conf, LD_PRELOAD=LIB)
    p = subprocess.run(["/bin/true"], env=env, stderr=subprocess.PIPE, text=True, check=False)
    assert p.returncode == 0, p.stderr
    return p.stderr


def rows():
    """{key: (default, accepted values)} from the help table."""
    out = {}
    for line in conf_table.library_table(LIB)[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0].strip("`")] = (cells[1].strip("`"), cells[2])
    return out


class Help(unittest.TestCase):
    def test_help_prints_every_key_and_the_program_runs_on(self):
        err = run("help")
        self.assertIn("TINYMALLOC_CONF=key:value", err)
        keys = rows()
        self.assertGreaterEqual(len(keys), 25)
        for key in ("tiny_max", "medium_max", "arena_unit", "heaps", "huge_dynamic", "stats"):
            self.assertIn(key, keys)
        self.assertNotIn("verbose", keys)  # reserved and never read: gone

    def test_every_default_is_accepted_silently(self):
        conf = ",".join(f"{k}:{d}" for k, (d, _) in rows().items()
                        if d not in ("derived", "none", "one page per class"))
        self.assertEqual(run(conf), "")

    def test_printed_ranges_are_the_checked_ranges(self):
        """Each numeric key takes its printed minimum and maximum, and refuses past them with a
        message that repeats the printed range."""
        checked = 0
        for key, (_, accepted) in rows().items():
            m = RANGE.match(accepted)
            if not m:
                continue
            lo, hi = m.groups()
            self.assertEqual(run(f"{key}:{lo}"), "", key)
            self.assertEqual(run(f"{key}:{hi}"), "", key)
            err = run(f"{key}:99999999g")
            self.assertEqual(err, f"tinymalloc: TINYMALLOC_CONF: ignoring '{key}:99999999g' ({accepted})\n")
            if lo != "0":
                self.assertIn(f"ignoring '{key}:0'", run(f"{key}:0"))
            checked += 1
        self.assertGreaterEqual(checked, 20)

    def test_a_range_that_depends_on_another_key_follows_it(self):
        err = run("medium_max:4m,arena_unit:64k")  # arena_unit given after: still applies
        self.assertIn("ignoring 'medium_max:4m' (16k to 4032k: one arena chunk at arena_unit 64k)", err)
        self.assertEqual(run("arena_unit:64k,medium_max:4032k"), "")
        err = run("huge_threshold_max:32m,huge_threshold:64m")
        self.assertIn("ignoring 'huge_threshold_max:32m' (huge_threshold (64m) to 65536g)", err)

    def test_readme_copy_is_current(self):
        self.assertEqual(conf_table.main(["--check"]), 0,
                         "README's TINYMALLOC_CONF table differs: run `make conf-table`")


if __name__ == "__main__":
    unittest.main()
