# bench/parallel.py (make bench-parallel) end to end: an sshd of the test's own on 127.0.0.1,
# with a throwaway host key and client key, reached as two ssh aliases (h1, h2), each with its
# working folder; a tiny matrix of the fixture workload split over them, a shard killed
# halfway and completed by a rerun, a host that cannot be reached, and replicate mode.
import json
import os
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

PARALLEL = os.path.join(ROOT, "bench", "parallel.py")
SSHD = "/usr/sbin/sshd"
MISSING = [t for t in ("parallel", "rsync", "ssh", "ssh-keygen", "hyperfine", "cc", "git") if not shutil.which(t)] + \
    ([] if os.path.exists(SSHD) else ["sshd (openssh-server)"])
JEMALLOC = allocators.find_package_lib("libjemalloc2", r"/libjemalloc\.so\.2$", "libjemalloc.so.2")
IN_GIT = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode == 0 if shutil.which("git") else False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(tmp):
    """-> (sshd process, ssh config path) or raises unittest.SkipTest with the reason."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("sshd needs root to switch to the logged-in user")
    for n in ("hostkey", "id"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(tmp, n)], check=True)
    shutil.copy(os.path.join(tmp, "id.pub"), os.path.join(tmp, "authorized_keys"))
    os.chmod(os.path.join(tmp, "authorized_keys"), 0o600)
    port, dead = free_port(), free_port()
    conf = os.path.join(tmp, "sshd_config")
    with open(conf, "w") as f:
        f.write(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {tmp}/hostkey\n"
                f"AuthorizedKeysFile {tmp}/authorized_keys\nPasswordAuthentication no\n"
                "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\n"
                f"UsePAM no\nPidFile {tmp}/sshd.pid\nMaxStartups 50\nMaxSessions 50\n")
    os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder
    cfg = os.path.join(tmp, "ssh_config")
    with open(cfg, "w") as f:
        # h1 and h2 are the same sshd; hdead is a port nobody listens on
        for names, p in (("h1 h2", port), ("hdead", dead)):
            f.write(f"Host {names}\n  HostName 127.0.0.1\n  Port {p}\n  User root\n  IdentityFile {tmp}/id\n"
                    "  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
                    "  LogLevel ERROR\n  BatchMode yes\n  ConnectTimeout 5\n")
    proc = subprocess.Popen([SSHD, "-D", "-f", conf, "-E", os.path.join(tmp, "sshd.log")])
    for _ in range(100):
        if subprocess.run(["ssh", "-F", cfg, "h1", "true"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            return proc, cfg
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    with open(os.path.join(tmp, "sshd.log")) as f:
        raise unittest.SkipTest("sshd did not start here: " + f.read().strip()[-300:])


@unittest.skipIf(MISSING, "missing: " + ", ".join(MISSING))
@unittest.skipUnless(JEMALLOC, "libjemalloc2 not installed")
@unittest.skipUnless(IN_GIT, "not a git checkout (the hosts get a commit)")
class Parallel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tm-bench-par-")
        cls.sshd, cls.cfg = start_sshd(cls.tmp)
        fx = build_fixture(cls.tmp)
        man = os.path.join(cls.tmp, "manifest")
        os.makedirs(man)
        # shard 1/2 gets a and c (names sorted, dealt out), shard 2/2 gets b; a is slow enough
        # for a kill to land in the middle of it
        with open(os.path.join(man, "t.json"), "w") as f:
            json.dump({"workloads": [
                {"name": "a", "cmd": [fx, "--n", "100", "--sleep-ms", "700"], "timeout": 30},
                {"name": "b", "cmd": [fx, "--n", "2000"], "timeout": 30},
                {"name": "c", "cmd": [fx, "--n", "2000"], "timeout": 30}]}, f)
        cls.res = os.path.join(cls.tmp, "results")
        cls.remote = f"tm-bench-test-{os.getpid()}"
        cls.base = ["--ssh", f"ssh -F {cls.cfg}", "--results-dir", cls.res, "--remote-dir", cls.remote,
                    "--scale", "quick", "--make", "ALLOCATORS=glibc,jemalloc", "--no-plots",
                    "--bench-args", f"--manifest {man} --no-strace --runs 2"]

    @classmethod
    def tearDownClass(cls):
        cls.sshd.terminate()
        cls.sshd.wait()
        shutil.rmtree(os.path.join(os.path.expanduser("~"), cls.remote), ignore_errors=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_par(self, args, timeout=300):
        return subprocess.run([PY, PARALLEL] + self.base + args, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)

    def merged(self, name):
        with open(os.path.join(self.res, name, "merged", "summary.json")) as f:
            s = json.load(f)
        with open(os.path.join(self.res, name, "merged", "report.md")) as f:
            return s, {(c["host"], c["workload"], c["allocator"]): c for c in s["cells"]}, f.read()

    def test_shards_split_over_two_hosts_and_merge_every_cell(self):
        p = self.run_par(["--hosts", "h1,h2", "--name", "sh"])
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr)
        s, cells, report = self.merged("sh")
        want = {(h, w, a) for h, ws in (("h1", "ac"), ("h2", "b")) for w in ws for a in ("glibc", "jemalloc")}
        self.assertEqual(set(cells), want)
        self.assertTrue(all(c["status"] == "ok" for c in cells.values()), cells)
        self.assertNotIn("## Not run", report)
        # each alias worked in a folder of its own, and the runs came back into results/NAME/
        home = os.path.expanduser("~")
        for h, shard in (("h1", "sh-s1of2"), ("h2", "sh-s2of2")):
            wd = os.path.join(home, self.remote, "sh", h)
            self.assertTrue(any(n.startswith("tree-") for n in os.listdir(wd)), os.listdir(wd))
            with open(os.path.join(self.res, "sh", shard, "env.json")) as f:
                self.assertEqual(json.load(f)["host"], h)
        # a rerun of a finished NAME sends nothing and merges again
        p = self.run_par(["--hosts", "h1,h2", "--name", "sh"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2 already finished", p.stdout)

    def wait_for(self, cond, what, timeout=120):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            time.sleep(0.05)
        self.fail(f"timed out waiting for {what}")

    def kill_shard_halfway(self, name, extra):
        """Start NAME over h1,h2; once shard 1 recorded its first step of workload a, kill its
        bench/run.py (as a machine that drops out would end it). -> (process, first record)."""
        proc = subprocess.Popen([PY, PARALLEL] + self.base + ["--hosts", "h1,h2", "--name", name] + extra,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        raw = os.path.join(os.path.expanduser("~"), self.remote, name, "h1", f"{name}-s1of2", "raw", "a")

        def first():
            # A finished record only: one seen while it was being written (empty, once in a
            # full `make test`) is rightly written again by the rerun, which this case checks
            # does not happen to a finished one.
            for d, _, files in os.walk(raw):
                for f in files:
                    if f.endswith(".json"):
                        try:
                            with open(os.path.join(d, f)) as fh:
                                json.load(fh)
                        except (OSError, ValueError):
                            continue
                        return os.path.join(d, f)
        self.wait_for(first, "shard 1's first record")
        rec = first()
        rid = f"{name}-s1of2"
        self.wait_for(lambda: subprocess.run(["pkill", "-KILL", "-f", f"bench/run.py .*{rid}"]).returncode == 0,
                      "shard 1's bench/run.py")
        return proc, rec

    def test_a_shard_killed_halfway_is_named_then_completed_by_a_rerun(self):
        proc, rec = self.kill_shard_halfway("kill", ["--retries", "0"])
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 1, out[-3000:] + err)
        s, cells, report = self.merged("kill")
        gone = sorted(f"{w} x {a}" for (h, w, a), c in cells.items() if c["status"] == "incomplete")
        self.assertTrue(gone, cells)
        self.assertTrue(all(w.split()[0] in "ac" for w in gone), gone)
        self.assertIn("## Not run", report)
        for g in gone:
            self.assertIn(f"- {g} on h1 (run kill-s1of2)", report)
        self.assertIn("run the same command again", err)
        # the record made before the kill came back, and the rerun keeps it as it was
        local = os.path.join(self.res, "kill", os.path.relpath(rec, os.path.join(os.path.expanduser("~"),
                                                                             self.remote, "kill", "h1")))
        with open(local) as f:
            before = f.read()
        p = self.run_par(["--hosts", "h1,h2", "--name", "kill", "--retries", "0"])
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr)
        s, cells, report = self.merged("kill")
        self.assertEqual(len(cells), 6)
        self.assertTrue(all(c["status"] == "ok" for c in cells.values()), cells)
        self.assertNotIn("## Not run", report)
        self.assertIn("1 already finished", p.stdout)
        with open(local) as f:
            self.assertEqual(f.read(), before)

    def test_a_failed_job_is_tried_again_and_resumes(self):
        proc, rec = self.kill_shard_halfway("retry", [])
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 0, out[-3000:] + err)
        s, cells, _ = self.merged("retry")
        self.assertTrue(all(c["status"] == "ok" for c in cells.values()), cells)
        self.assertIn("bench/run.py --resume", out)   # the second try resumed the run, not started over

    def test_a_host_that_cannot_be_reached_is_named_with_its_workloads(self):
        p = self.run_par(["--hosts", "h1,hdead", "--name", "dead", "--retries", "0"])
        self.assertEqual(p.returncode, 1, p.stdout[-3000:] + p.stderr)
        s, cells, report = self.merged("dead")
        self.assertEqual({k[0] for k in cells}, {"h1"})
        self.assertIn("- run dead-s2of2 (shard 2/2) on hdead: no results came back", report)
        self.assertIn("every allocator of b", report)
        self.assertEqual([m["workloads"] for m in s["not_run"]], [["b"]])

    def test_replicate_runs_everything_on_each_host_and_never_divides_across_hosts(self):
        p = self.run_par(["--hosts", "h1,h2", "--name", "rep", "--mode", "replicate", "--make", "WORKLOADS=b,c"])
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr)
        s, cells, report = self.merged("rep")
        self.assertEqual(set(cells), {(h, w, a) for h in ("h1", "h2") for w in "bc" for a in ("glibc", "jemalloc")})
        for h in ("h1", "h2"):
            self.assertIn(f"## Summary on {h}", report)
        self.assertIn("## Rankings per host", report)
        for (h, w, a), c in cells.items():
            self.assertAlmostEqual(c["ratio_glibc"], c["time_median_s"] / cells[(h, w, "glibc")]["time_median_s"], 6)
        self.assertEqual({x["host"] for x in s["allocators"]}, {"h1", "h2"})

    def test_usage_errors(self):
        for args, token in ((["--hosts", "h1,h1"], "given twice"),
                            (["--hosts", "h1,bad/host"], "bad host"),
                            (["--hosts", "h1", "--make", "CFLAGS=-O0"], "bad --make"),
                            (["--hosts", "h1", "--mode", "replicate", "--shards", "3"], "--shards"),
                            (["--hosts", "h1", "--bench-args", "--run-id x"], "--run-id"),
                            ([], "give the hosts")):
            p = self.run_par(args + ["--name", "usage"], timeout=60)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(token, p.stderr)
        # a name started with other settings is not mixed with them
        p = self.run_par(["--hosts", "hdead", "--name", "usage2", "--retries", "0"], timeout=60)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("nothing came back", p.stderr)
        p = self.run_par(["--hosts", "h1", "--name", "usage2", "--dry-run"], timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("was started with hosts", p.stderr)


class MakeTargets(unittest.TestCase):
    """The make variables reach bench/parallel.py and bench/slurm.py as their options."""

    def make_n(self, *args):
        p = subprocess.run(["make", "-s", "-n", "-C", ROOT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return next(ln for ln in p.stdout.splitlines() if "bench/" in ln and ".py" in ln and "setup" not in ln)

    def test_bench_parallel(self):
        line = self.make_n("bench-parallel", "HOSTS=a,b", "MODE=replicate", "RUNS=3", "SSH=ssh -F x", "NAME=n")
        self.assertIn("bench/parallel.py --hosts 'a,b'", line)
        for opt in ("--mode 'replicate'", "--make 'RUNS=3'", "--ssh 'ssh -F x'", "--name 'n'"):
            self.assertIn(opt, line)

    def test_bench_slurm(self):
        line = self.make_n("bench-slurm", "SHARDS=4", "SBATCH=--partition=p --time=1:00:00", "SUBMIT=1",
                           "WORKLOADS=x")
        for opt in ("--shards '4'", "--sbatch='--partition=p' --sbatch='--time=1:00:00'", "--submit",
                    "--make 'WORKLOADS=x'"):
            self.assertIn(opt, line)
        p = subprocess.run(["make", "-C", ROOT, "bench-slurm"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("give SHARDS=n", p.stderr)


if __name__ == "__main__":
    unittest.main()
