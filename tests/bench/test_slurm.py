# bench/slurm.py (make bench-slurm) checked by Slurm itself: the test starts a one-node Slurm of
# its own (munged, slurmctld, slurmd on 127.0.0.1, in a temporary folder), submits the array job
# of a tiny matrix and its merge, and checks that every cell came back merged.
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PY, ROOT, build_fixture  # noqa: E402
import allocators  # noqa: E402

SLURM = os.path.join(ROOT, "bench", "slurm.py")
DAEMONS = ("munged", "slurmctld", "slurmd")
TOOLS = ("munge", "sbatch", "scontrol", "sinfo", "hyperfine", "cc", "git")
MISSING = [t for t in DAEMONS if not os.path.exists(f"/usr/sbin/{t}")] + [t for t in TOOLS if not shutil.which(t)]
JEMALLOC = allocators.find_package_lib("libjemalloc2", r"/libjemalloc\.so\.2$", "libjemalloc.so.2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipIf(MISSING, "missing: " + ", ".join(MISSING) + " (Debian slurmctld, slurmd, slurm-client, munge)")
@unittest.skipUnless(JEMALLOC, "libjemalloc2 not installed")
class Slurm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("a Slurm of the test's own runs its daemons as root")
        cls.tmp = tempfile.mkdtemp(prefix="tm-bench-slurm-")
        t = cls.tmp
        for d in ("state", "spool", "munge", "log"):
            os.makedirs(os.path.join(t, d), mode=0o700)
        os.chmod(t, 0o755)   # munged wants to reach its socket's folder
        with open(os.path.join(t, "munge", "key"), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(os.path.join(t, "munge", "key"), 0o600)
        sock = os.path.join(t, "munge", "sock")
        host = socket.gethostname().split(".")[0]
        conf = os.path.join(t, "slurm.conf")
        with open(conf, "w") as f:
            f.write(f"ClusterName=tmtest\nSlurmctldHost={host}(127.0.0.1)\nSlurmUser=root\nSlurmdUser=root\n"
                    f"SlurmctldPort={free_port()}\nSlurmdPort={free_port()}\nAuthType=auth/munge\n"
                    f"AuthInfo=socket={sock}\nCredType=cred/munge\nStateSaveLocation={t}/state\n"
                    f"SlurmdSpoolDir={t}/spool\nSlurmctldPidFile={t}/ctld.pid\nSlurmdPidFile={t}/slurmd.pid\n"
                    "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
                    "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
                    f"SlurmctldLogFile={t}/log/slurmctld.log\nSlurmdLogFile={t}/log/slurmd.log\n"
                    "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
                    f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN\n"
                    "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n")
        # the jobs get the submitter's environment: their node-local folders go under nodetmp
        cls.nodetmp = os.path.join(t, "nodetmp")
        os.makedirs(cls.nodetmp)
        cls.env = dict(os.environ, SLURM_CONF=conf, TMPDIR=cls.nodetmp)
        cls.procs = [subprocess.Popen(["/usr/sbin/munged", "-F", "-f", "-S", sock, f"--key-file={t}/munge/key",
                                       f"--log-file={t}/log/munged.log", f"--pid-file={t}/munge/pid",
                                       f"--seed-file={t}/munge/seed"], stderr=subprocess.DEVNULL)]
        time.sleep(0.5)
        cls.procs.append(subprocess.Popen(["/usr/sbin/slurmctld", "-D", "-i", "-c"], env=cls.env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1)
        cls.procs.append(subprocess.Popen(["/usr/sbin/slurmd", "-D"], env=cls.env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(150):
            p = subprocess.run(["sinfo", "-h", "-o", "%T"], env=cls.env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            if p.returncode == 0 and p.stdout.strip() == "idle":
                break
            time.sleep(0.2)
        else:
            logs = ""
            for n in ("munged", "slurmctld", "slurmd"):
                path = os.path.join(t, "log", f"{n}.log")
                if os.path.exists(path):
                    with open(path) as f:
                        logs += f" {n}: " + f.read().strip()[-200:]
            cls.tearDownClass()
            raise unittest.SkipTest("a one-node Slurm did not start here:" + logs)
        fx = build_fixture(t)
        man = os.path.join(t, "manifest")
        os.makedirs(man)
        with open(os.path.join(man, "t.json"), "w") as f:
            json.dump({"workloads": [{"name": w, "cmd": [fx, "--n", "2000"], "timeout": 30} for w in "abc"]}, f)
        cls.res = os.path.join(t, "results")
        cls.base = ["--results-dir", cls.res, "--scale", "quick", "--make", "ALLOCATORS=glibc,jemalloc",
                    "--bench-args", f"--manifest {man} --no-strace --runs 2"]

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["scontrol", "shutdown"], env=cls.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in reversed(cls.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for p in cls.procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def slurm_py(self, args):
        return subprocess.run([PY, SLURM] + self.base + args, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=120)

    def job_state(self, jid):
        p = subprocess.run(["scontrol", "-o", "show", "job", jid], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        states = [tok.split("=", 1)[1] for tok in p.stdout.split() if tok.startswith("JobState=")]
        return states

    def test_the_array_job_runs_every_shard_and_the_merge_waits_for_them(self):
        p = self.slurm_py(["--shards", "2", "--name", "sl", "--submit"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        out = os.path.join(self.res, "sl")
        with open(os.path.join(out, "slurm", "bench.sbatch")) as f:
            script = f.read()
        for line in ("#SBATCH --array=1-2", "#SBATCH --exclusive"):
            self.assertIn(line, script)
        with open(os.path.join(out, "slurm", "submit.sh")) as f:
            self.assertIn("--dependency=afterok:", f.read())
        # Slurm's own reading of the script: it would schedule it as written
        t = subprocess.run(["sbatch", "--test-only", os.path.join(out, "slurm", "bench.sbatch")], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertEqual(t.returncode, 0, t.stdout)
        merge_id = p.stdout.split("merge job ")[1].split(":")[0]
        end = time.time() + 300
        while time.time() < end and not set(self.job_state(merge_id)) & {"COMPLETED", "FAILED", "CANCELLED",
                                                                          "TIMEOUT"}:
            time.sleep(0.5)
        logs = ""
        for n in sorted(os.listdir(os.path.join(out, "logs"))):
            with open(os.path.join(out, "logs", n)) as f:
                logs += f"--- {n}\n" + f.read()[-1500:]
        self.assertEqual(self.job_state(merge_id), ["COMPLETED"], logs)
        with open(os.path.join(out, "merged", "summary.json")) as f:
            s = json.load(f)
        cells = {(c["workload"], c["allocator"]): c["status"] for c in s["cells"]}
        self.assertEqual(cells, {(w, a): "ok" for w in "abc" for a in ("glibc", "jemalloc")}, logs)
        with open(os.path.join(out, "merged", "sources.json")) as f:
            self.assertEqual(sorted(r["run_id"] for r in json.load(f)["runs"]), ["sl-s1of2", "sl-s2of2"])
        self.assertEqual(os.listdir(self.nodetmp), [])   # each job removed its unpacked tree

    def test_usage_errors(self):
        for args, token in ((["--shards", "0"], "--shards"),
                            (["--shards", "2", "--sbatch=--array=1-9"], "the script sets it"),
                            (["--shards", "2", "--sbatch", "--partition x"], "bad --sbatch"),
                            (["--shards", "2", "--make", "CC=clang"], "bad --make")):
            p = self.slurm_py(args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertIn(token, p.stderr)


if __name__ == "__main__":
    unittest.main()
