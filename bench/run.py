#!/usr/bin/python3
"""Run the bench matrix (workload x allocator x repetition) and write results/<run-id>/.

  bench/run.py [--scale default|quick|tiny] [--workloads LIST] [--allocators LIST] [--runs N]
  bench/run.py --resume RUN_ID          finish an interrupted run (same matrix, same order)
  bench/run.py --shard 2/3 ...          run the 2nd of 3 shares (by workload) of the matrix
  bench/run.py --threads 1,2,8 ...      thread counts of the workloads that sweep them: each
                                        count is a cell of its own, NAME@T (bench/manifest.py);
                                        the report adds a thread-scaling section

What one cell (workload x allocator) gets, in this order:
  * per round (--blocks rounds, default 3): one untimed "mem" run under a wait4 wrapper
    (peak RSS of the largest process, the sampled sum of RSS over the process tree, page
    faults, output checks, the program's TMBENCH line), then one hyperfine call
    (--warmup runs, then its share of --runs timed runs, --export-json kept). Within each
    round the allocators run in a shuffled order (seeded; the seed is in plan.json), so a
    drifting machine does not favour one allocator.
  * one untimed `strace -f -c` run counting mmap, munmap, mremap, brk, madvise (and the
    rest of strace's %memory class);
  * one untimed latency run with the workload's `latency_args`, when it has them.
  With --runs 0 a cell gets only its mem run (checked, probed, its output kept): for
  programs whose output is the result, such as the heap-error probes (make bench-probes), or
  that time themselves, such as the micro-benchmark (make bench-micro: --blocks N is then N
  mem runs per cell, and --interleave shuffles every round over all the workloads).
Every run preloads build/bench/tm-probe.so after the allocator; it records which library
served malloc in each process. No record, or another library, is a FAIL. So are a crash, a
timeout, an exit status other than check.exit, output not matching check.stdout_regex, a
failing check.cmd. After the first failure of a cell the rest of it is skipped.

Raw records go to results/<run-id>/raw/<workload>/<allocator>/, each written whole when its
step ends, so an interrupted run (Ctrl-C, a kill, a crash of the machine) keeps what it
finished and `--resume RUN_ID` runs only what is missing. At the end scripts/tabulate.py
writes summary.csv, summary.json, report.md and plots/, and results/latest points at the run.

Noise: around every step the harness reads the machine's busy CPU time (/proc/stat) and its
own and its children's (rusage); what neither it nor its children took was taken by other
processes (or stolen by the hypervisor). A step where that is over --busy-threshold of the
machine's CPU time is marked busy, and so is its cell in the report. --quiet-machine waits
for a quiet machine before starting (other processes under the busy threshold, and a 1-minute
load average of at most half the CPUs) and refuses to start on one that stays busy. A virtual
machine can also run slower for minutes with neither: so before and after every step the
harness times a fixed CPU-bound loop (on the pinned CPU with --pin), and a cell with a timed step
whose loop took over 1.3x the run's fastest both before and after it is marked slow in the report;
a cell whose blocks' medians differ by over 1.25x is marked unstable. --pin runs
the workloads the manifest marks single-threaded (`"threads": 1`) on one CPU (taskset).

Exit status: 0 the matrix ran to the end (FAIL cells are results: they are in the report and
printed at the end); 1 with --strict, when a cell failed; 2 usage error (bad option, unknown
workload or allocator, bad manifest, run id taken); 3 missing dependency (hyperfine, strace,
cc, taskset, an allocator library); 4 the machine stayed busy past --quiet-machine's limit;
130 interrupted (resumable).
"""
import argparse
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import allocators as registry  # noqa: E402
import benchlib  # noqa: E402
import manifest as mf  # noqa: E402
import tabulate  # noqa: E402
from benchlib import BenchError, EXIT_BUSY, EXIT_MISSING  # noqa: E402

ROOT = benchlib.ROOT
PROBE_SRC = os.path.join(ROOT, "bench", "probe.c")
PROBE_SO = os.path.join(ROOT, "build", "bench", "tm-probe.so")
STDOUT_KEEP = 1 << 20
BUSY_THRESHOLD = 0.05      # share of the machine's CPU time others may take before a step is busy
QUIET_LIMIT = 300          # seconds --quiet-machine waits by default


# ---------------------------------------------------------------------------------------
# set-up checks

def need_tool(name, why):
    path = shutil.which(name)
    if not path:
        raise BenchError(f"{name} not found ({why}); install it with scripts/setup.py (make bench does)",
                         EXIT_MISSING)
    return path


def ensure_probe(path=PROBE_SO):
    """Build the probe library when it is missing or older than bench/probe.c."""
    if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(PROBE_SRC):
        return path
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        raise BenchError(f"C compiler {cc} not found (needed for {os.path.relpath(path, ROOT)})", EXIT_MISSING)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    p = subprocess.run([cc, "-std=gnu11", "-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
                        "-o", path, PROBE_SRC, "-ldl"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise BenchError(f"building the probe failed:\n{p.stdout}", EXIT_MISSING)
    return path


def gnu_time():
    """GNU time (Debian package `time`), not the shell keyword."""
    for p in ("/usr/bin/time", shutil.which("time") or ""):
        if p and os.access(p, os.X_OK):
            out = subprocess.run([p, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True).stdout
            if "GNU" in out:
                return p
    raise BenchError("GNU time not found (it reports each run's rusage); install the Debian package `time` "
                     "(scripts/setup.py does)", EXIT_MISSING)


# ---------------------------------------------------------------------------------------
# the plan

def split_runs(runs, blocks):
    base, extra = divmod(runs, blocks)
    return [base + (1 if i < extra else 0) for i in range(blocks)]


def parse_shard(s):
    m = re.fullmatch(r"(\d+)/(\d+)", s or "")
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise BenchError(f"bad --shard {s!r}: expected i/n with 1 <= i <= n, e.g. 2/3")
    return int(m.group(1)), int(m.group(2))


def shard_workloads(workloads, i, n):
    """The i-th of n shares, by workload; every thread count of a sweep lands in one share, so
    a scaling curve is measured on one machine even when the shards run on several."""
    def key(w):
        return (w.get("sweep") or {}).get("base") or w["name"]
    names = sorted({key(w) for w in workloads})
    keep = {nm for k, nm in enumerate(names) if k % n == i - 1}
    return [w for w in workloads if key(w) in keep]


def build_plan(workloads, allocs, opts):
    rng = random.Random(opts["seed"])
    names = [a["name"] for a in allocs]
    per_block = split_runs(opts["runs"], opts["blocks"])

    def cell_round(w, a, r):
        out = [{"id": f"{w['name']}/{a}/mem-{r}", "workload": w["name"], "allocator": a,
                "kind": "mem", "round": r}]
        if per_block[r - 1] > 0:
            out.append({"id": f"{w['name']}/{a}/time-{r}", "workload": w["name"], "allocator": a,
                        "kind": "time", "round": r, "runs": per_block[r - 1]})
        return out

    def shuffled(items):
        items = list(items)
        rng.shuffle(items)
        return items

    steps = []
    rs = range(1, len(per_block) + 1)
    if opts.get("interleave"):
        # Round r of every cell before round r+1 of any, in a fresh shuffle over all workloads:
        # a slow phase of the machine then spreads over the workloads too, for runs whose
        # tables compare workloads with each other (the micro-benchmark's floor).
        for r in rs:
            for w, a in shuffled((w, a) for w in workloads for a in names):
                steps += cell_round(w, a, r)
    for w in workloads:
        if not opts.get("interleave"):
            for r in rs:
                for a in shuffled(names):
                    steps += cell_round(w, a, r)
        if opts["strace"]:
            steps += [{"id": f"{w['name']}/{a}/strace", "workload": w["name"], "allocator": a, "kind": "strace"}
                      for a in shuffled(names)]
        if opts["latency"] and w.get("latency_argv"):
            steps += [{"id": f"{w['name']}/{a}/latency", "workload": w["name"], "allocator": a,
                       "kind": "latency"} for a in shuffled(names)]
    return steps


# ---------------------------------------------------------------------------------------
# executing steps

class Runner:
    def __init__(self, run_dir, plan, quiet=False):
        self.dir = run_dir
        self.plan = plan
        self.wl = {w["name"]: w for w in plan["workloads"]}
        self.al = {a["name"]: a for a in plan["allocators"]}
        self.opts = plan["options"]
        self.quiet = quiet
        self.failed_cells = set()
        self.built = {}
        self.ready = {}
        self.seccomp = benchlib.strace_seccomp_ok() if self.opts["strace"] else False
        self.env_base = {k: v for k, v in os.environ.items()
                         if k not in ("LD_PRELOAD", "TMBENCH_PROBE_FILE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        self.env_bin = shutil.which("env") or "/usr/bin/env"
        self.time_bin = plan.get("time_bin") or "/usr/bin/time"
        cpus = benchlib.usable_cpus()
        self.ncpu = len(cpus)
        self.pin_cpu = cpus[-1] if self.opts.get("pin") else None
        self.best_speed = None  # the fastest speed probe so far (seconds): the live [slow] mark

    # paths
    def raw(self, *parts):
        return os.path.join(self.dir, "raw", *parts)

    def step_path(self, st):
        tag = st["kind"] + (f"-{st['round']}" if "round" in st else "")
        return self.raw(st["workload"], st["allocator"], f"{tag}.json")

    def log(self, msg):
        if not self.quiet:
            print(msg, flush=True)

    # environment for one run of the workload under one allocator
    def run_env(self, w, a, probe_file, preload=True):
        env = dict(self.env_base)
        env.update(w.get("env") or {})
        env["TMBENCH_PROBE_FILE"] = probe_file
        if preload:
            env["LD_PRELOAD"] = self.preload(a)
            env.update(a.get("env") or {})
        return env

    def alloc_words(self, a):
        """VAR=VALUE words that put allocator a under the measured program only (env(1), strace -E):
        the preload, then the variant's own environment."""
        return [f"LD_PRELOAD={self.preload(a)}"] + [f"{k}={v}" for k, v in (a.get("env") or {}).items()]

    def pin_argv(self, w):
        """taskset in front of a single-threaded workload's runs under --pin: the last usable
        CPU, so that the harness's own threads keep to the others."""
        if self.pin_cpu is None or w.get("threads") != 1:
            return []
        return ["taskset", "-c", str(self.pin_cpu)]

    def preload(self, a):
        # the probe first: its RTLD_NEXT lookup must see the allocator (see bench/probe.c)
        libs = [self.plan["probe"]] + ([a["lib"]] if a.get("lib") else [])
        return " ".join(libs)

    # build + prepare, once per workload and invocation
    def make_ready(self, w):
        if w["name"] in self.ready:
            return self.ready[w["name"]]
        reason = None
        if w.get("build") and not self.opts.get("no_build"):
            key = tuple(w["build"])
            if key not in self.built:
                n = len(self.built) + 1
                logf = self.raw("_build", f"build-{n}.log")
                os.makedirs(os.path.dirname(logf), exist_ok=True)
                self.log(f"build: {shlex.join(w['build'])}")
                with open(logf, "w") as lf:
                    try:
                        p = subprocess.run(w["build"], cwd=ROOT, env=self.env_base, stdout=lf,
                                           stderr=subprocess.STDOUT, timeout=3600)
                        rc = p.returncode
                    except (OSError, subprocess.TimeoutExpired) as e:
                        rc = str(e)
                self.built[key] = None if rc == 0 else \
                    f"build `{shlex.join(w['build'])}` failed ({rc}): {benchlib.last_line(benchlib.tail(logf))}"
                benchlib.write_json(self.raw("_build", f"build-{n}.json"),
                                    {"cmd": w["build"], "status": "ok" if rc == 0 else "fail",
                                     "reason": self.built[key]})
            reason = self.built[key]
        if reason is None and w.get("prepare"):
            rec_path = self.raw(w["name"], "prepare.json")
            if os.path.exists(rec_path) and benchlib.read_json(rec_path).get("status") == "ok":
                reason = None
            else:
                os.makedirs(w["cache_dir"], exist_ok=True)
                env = dict(self.env_base)
                env.update(w.get("env") or {})
                env.update({"TMBENCH_CACHE": w["cache_dir"], "TMBENCH_ROOT": ROOT})
                so, se = self.raw(w["name"], "prepare.stdout"), self.raw(w["name"], "prepare.stderr")
                os.makedirs(os.path.dirname(so), exist_ok=True)
                self.log(f"prepare {w['name']}: {shlex.join(w['prepare'])}")
                rec = benchlib.run_measured(w["prepare"], env, w["cwd"], max(600, 10 * w["timeout"]), so, se, 0)
                prob = benchlib.status_problem(rec, 0)
                reason = f"prepare failed: {prob}: {benchlib.last_line(benchlib.tail(se))}" if prob else None
                benchlib.write_json(rec_path, {"status": "fail" if prob else "ok", "reason": reason, "run": rec})
        self.ready[w["name"]] = reason
        return reason

    # checks shared by every untimed run
    def evaluate(self, w, a, rec, so, se, probe_file, run_check_cmd, min_processes=1):
        chk = w["check"]
        prob = benchlib.status_problem(rec, chk.get("exit", 0))
        if prob:
            err = benchlib.last_line(benchlib.tail(se))
            return prob + (f": {err}" if err else ""), None, []
        records = benchlib.parse_probe(benchlib.read_text(probe_file)) if os.path.exists(probe_file) else []
        prob = benchlib.check_probe(records, a, min_processes)
        if prob:
            return prob, None, records
        out = benchlib.read_text(so)
        rx = chk.get("stdout_regex")
        if rx and not re.search(rx, out, re.M):
            return f"output does not match /{rx}/", None, records
        tm, err = benchlib.parse_tmbench(out)
        if err:
            return err, None, records
        if tm and isinstance(tm.get("malloc_from"), str) and tm["malloc_from"] and \
                not benchlib.served_by(tm["malloc_from"], a):
            return f"program reports malloc from {tm['malloc_from']}", tm, records
        if run_check_cmd and chk.get("cmd"):
            env = self.run_env(w, a, os.devnull, preload=False)
            env.update({"TMBENCH_STDOUT": so, "TMBENCH_STDERR": se, "TMBENCH_ALLOCATOR": a["name"],
                        "TMBENCH_WORKLOAD": w["name"], "TMBENCH_CACHE": w["cache_dir"], "TMBENCH_ROOT": ROOT})
            env.pop("TMBENCH_PROBE_FILE", None)
            try:
                p = subprocess.run(chk["cmd"], cwd=w["cwd"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace",
                                   timeout=chk.get("timeout") or w["timeout"])
                if p.returncode != 0:
                    return f"check command exit {p.returncode}: {benchlib.last_line(p.stdout)}", tm, records
            except (OSError, subprocess.TimeoutExpired) as e:
                return f"check command: {e}", tm, records
        return None, tm, records

    @staticmethod
    def probe_summary(records):
        return {"processes": len({r[0] for r in records if r[2] == ""}),
                "libs": sorted({r[1] for r in records})}

    @staticmethod
    def trim(path):
        try:
            if os.path.getsize(path) > STDOUT_KEEP:
                data = benchlib.tail(path, STDOUT_KEEP // 4)
                with open(path, "w") as f:
                    f.write(f"[harness: output cut to its last {STDOUT_KEEP // 4} bytes]\n" + data)
        except OSError:
            pass

    def step_untimed(self, st, w, a, argv, timeout, sample, run_check_cmd, prefix_argv=None):
        d = self.raw(st["workload"], st["allocator"])
        os.makedirs(d, exist_ok=True)
        tag = os.path.basename(self.step_path(st))[:-5]
        probe_file = os.path.join(d, f"probe-{tag}.txt")
        so, se = os.path.join(d, f"{tag}.stdout"), os.path.join(d, f"{tag}.stderr")
        if os.path.exists(probe_file):
            os.unlink(probe_file)
        env = self.run_env(w, a, probe_file, preload=False)
        pin = self.pin_argv(w)
        if prefix_argv:   # strace: it sets LD_PRELOAD for the program itself (-E)
            rec = benchlib.run_measured(pin + prefix_argv + argv, env, w["cwd"], timeout, so, se, sample)
        else:             # GNU time -> env LD_PRELOAD=... -> program: time itself is not preloaded
            rec = benchlib.run_measured(pin + [self.env_bin] + self.alloc_words(a) + argv, env,
                                        w["cwd"], timeout, so, se, sample, time_bin=self.time_bin)
        reason, tm, records = self.evaluate(w, a, rec, so, se, probe_file, run_check_cmd)
        self.trim(so)
        self.trim(se)
        return {"status": "fail" if reason else "ok", "reason": reason, "run": rec, "tmbench": tm,
                "probe": self.probe_summary(records)}

    def step_mem(self, st, w, a):
        return self.step_untimed(st, w, a, w["argv"], w["timeout"], self.opts["sample_ms"] / 1000.0, True)

    def step_latency(self, st, w, a):
        r = self.step_untimed(st, w, a, w["latency_argv"], w["timeout"] * 2, 0, False)
        if r["status"] == "ok":
            lat = (r.get("tmbench") or {}).get("latency_ns")
            r["latency_ns"] = lat if isinstance(lat, dict) else None
        return r

    def step_strace(self, st, w, a):
        d = self.raw(st["workload"], st["allocator"])
        out = os.path.join(d, "strace.txt")
        pre = ["strace", "-f", "-c", "-o", out, "-e", "trace=%memory"] + (["--seccomp-bpf"] if self.seccomp else [])
        for word in self.alloc_words(a):
            pre += ["-E", word]
        r = self.step_untimed(st, w, a, w["argv"], 5 * w["timeout"] + 30, 0, False, prefix_argv=pre)
        if r["status"] == "ok":
            try:
                parsed = benchlib.parse_strace_c(benchlib.read_text(out))
                r["strace"] = parsed
                r["oscalls"] = benchlib.oscall_counts(parsed)
            except (OSError, ValueError) as e:
                r["status"], r["reason"] = "fail", f"strace gave no summary: {e}"
        return r

    def step_time(self, st, w, a):
        d = self.raw(st["workload"], st["allocator"])
        os.makedirs(d, exist_ok=True)
        r = st["round"]
        probe_file = os.path.join(d, f"probe-time-{r}.txt")
        js = os.path.join(d, f"hyperfine-{r}.json")
        logf = os.path.join(d, f"hyperfine-{r}.log")
        for f in (probe_file, js):
            if os.path.exists(f):
                os.unlink(f)
        words = [self.env_bin] + self.alloc_words(a) + [f"TMBENCH_PROBE_FILE={probe_file}"]
        words += [f"{k}={v}" for k, v in (w.get("env") or {}).items()]
        cmd = shlex.join(words + w["argv"])
        warm, n = self.opts["warmup"], st["runs"]
        argv = self.pin_argv(w) + ["hyperfine", "-N", "--style", "basic", "-i", "--warmup", str(warm), "--runs", str(n),
                "--export-json", js, "--command-name", f"{w['name']}@{a['name']}", cmd]
        limit = (warm + n) * w["timeout"] + 30
        with open(logf, "w") as lf:
            p = subprocess.Popen(argv, cwd=w["cwd"], env=self.env_base, stdin=subprocess.DEVNULL, stdout=lf,
                                 stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = p.wait(timeout=limit)
            except BaseException as e:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
                if isinstance(e, subprocess.TimeoutExpired):
                    return {"status": "fail", "reason": f"timeout: {warm + n} runs took over {limit} s",
                            "hyperfine_rc": None}
                raise
        res = {"status": "ok", "reason": None, "hyperfine_rc": rc, "hyperfine_json": os.path.relpath(js, self.dir),
               "command": cmd}
        try:
            hf = benchlib.parse_hyperfine(benchlib.read_text(js))
        except (OSError, ValueError) as e:
            res.update(status="fail", reason=f"hyperfine failed (exit {rc}): {e}: "
                                             f"{benchlib.last_line(benchlib.tail(logf))}")
            return res
        res.update(times=hf["times"], exit_codes=hf["exit_codes"], user=hf["user"], system=hf["system"])
        want = w["check"].get("exit", 0)
        bad = [c for c in hf["exit_codes"] if want is not None and c != want]
        if bad:
            res.update(status="fail", reason=f"timed run exit status {bad[0]} (expected {want})")
            return res
        records = benchlib.parse_probe(benchlib.read_text(probe_file)) if os.path.exists(probe_file) else []
        res["probe"] = self.probe_summary(records)
        prob = benchlib.check_probe(records, a, warm + n)
        if prob:
            res.update(status="fail", reason=prob)
        return res

    # the loop
    def run(self):
        steps = self.plan["steps"]
        todo = [s for s in steps if not os.path.exists(self.step_path(s))]
        for s in steps:
            p = self.step_path(s)
            if os.path.exists(p) and benchlib.read_json(p).get("status") == "fail":
                self.failed_cells.add((s["workload"], s["allocator"]))
        done_before = len(steps) - len(todo)
        if done_before:
            self.log(f"resuming: {done_before} of {len(steps)} steps already recorded")
        t_start = time.monotonic()
        durations = []  # (workload, kind, seconds)
        for k, st in enumerate(todo, 1):
            w, a = self.wl[st["workload"]], self.al[st["allocator"]]
            cell = (st["workload"], st["allocator"])
            label = st["kind"] + (f" {st['round']}/{self.opts['blocks']}" if "round" in st else "")
            reason = self.make_ready(w)  # build/prepare log their own lines, before the step's
            elapsed = time.monotonic() - t_start
            eta = self.estimate(todo[k - 1:], durations)
            prefix = (f"[{done_before + k:>4}/{len(steps)}] {st['workload']:<22} {st['allocator']:<12} "
                      f"{label:<10} elapsed {fmt_dur(elapsed)}  eta {fmt_dur(eta)}")
            if not self.quiet:
                print(prefix, end="", flush=True)
            speed_before = benchlib.speed_probe(cpu=self.pin_cpu)
            t0 = time.monotonic()
            clock = benchlib.CpuClock()
            if reason:
                res = {"status": "fail", "reason": reason}
            elif cell in self.failed_cells:
                res = {"status": "skipped", "reason": "an earlier run of this cell failed"}
            else:
                try:
                    res = getattr(self, f"step_{st['kind']}")(st, w, a)
                except KeyboardInterrupt:
                    if not self.quiet:
                        print("  interrupted", flush=True)
                    raise
            dt = time.monotonic() - t0
            if self.pin_argv(w):
                res["pinned_cpu"] = self.pin_cpu
            if res["status"] != "skipped" and not reason:
                res["noise"] = benchlib.cpu_noise(clock, benchlib.CpuClock(), self.ncpu,
                                                  self.opts.get("busy_threshold", BUSY_THRESHOLD))
                res["speed"] = {"before_s": round(speed_before, 6),
                                "after_s": round(benchlib.speed_probe(cpu=self.pin_cpu), 6)}
                self.best_speed = min(self.best_speed or speed_before, *res["speed"].values())
            res.update({"step": st["id"], "kind": st["kind"], "workload": st["workload"],
                        "allocator": st["allocator"], "round": st.get("round"), "duration_s": round(dt, 3),
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            benchlib.write_json(self.step_path(st), res)
            if res["status"] == "fail":
                self.failed_cells.add(cell)
            if res["status"] != "skipped":
                durations.append((st["workload"], st["kind"], dt))
            if not self.quiet:
                print("  " + step_result(res) + live_marks(res, self.best_speed), flush=True)
        return len(self.failed_cells)

    @staticmethod
    def estimate(remaining, durations):
        if not remaining:
            return 0.0
        if not durations:
            return None
        total = 0.0
        for st in remaining:
            same = [d for wl, kind, d in durations if wl == st["workload"] and kind == st["kind"]]
            kind = [d for _, knd, d in durations if knd == st["kind"]]
            pool = same or kind or [d for _, _, d in durations]
            total += sum(pool) / len(pool)
        return total


def fmt_dur(s):
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def step_result(res):
    if res["status"] == "fail":
        return f"FAIL: {res.get('reason')}"
    if res["status"] == "skipped":
        return "skipped"
    if res.get("times"):
        return f"ok  median {benchlib.median(res['times']) * 1000:.1f} ms of {len(res['times'])}"
    if res.get("oscalls"):
        return "ok  " + " ".join(f"{k} {v}" for k, v in res["oscalls"].items())
    run = res.get("run") or {}
    return f"ok  {run.get('wall_s', 0) * 1000:.1f} ms, max RSS {run.get('max_rss_kb')} KiB"


def live_marks(res, best_speed):
    """The marks the console gives a step as it ends: the report's, by the report's rules. A
    slow machine marks timed steps only, as in bench/tabulate.py: it changes how long a program
    takes, not how much memory it uses (the console once marked memory runs the report did not)."""
    marks = ""
    if (res.get("noise") or {}).get("busy"):
        marks += f"  [busy: others took {res['noise']['other_share'] * 100:.0f} % of the CPU]"
    slow = benchlib.slowness(res, best_speed) or 1.0
    if res.get("kind") == "time" and slow > benchlib.SLOW_FACTOR:
        marks += f"  [slow: the machine ran at 1/{slow:.2f} of its best speed in this run]"
    return marks


def update_latest(results_dir, run_id):
    link = os.path.join(results_dir, "latest")
    tmp = f"{link}.tmp{os.getpid()}"
    try:
        os.symlink(run_id, tmp)
        os.replace(tmp, link)
    except OSError:
        with open(link + ".txt", "w") as f:
            f.write(run_id + "\n")


# ---------------------------------------------------------------------------------------

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="default", help="scale of every workload (default, quick, tiny)")
    ap.add_argument("--workloads", metavar="LIST", help="comma list of workload names or group:NAME (default all)")
    ap.add_argument("--threads", metavar="LIST",
                    help="thread counts for the workloads that sweep them ({threads} in their cmd), each a "
                         "cell of its own (default: 1, the usable CPUs, 4x that)")
    ap.add_argument("--allocators", metavar="LIST",
                    help="comma list of names and NAME=/path/lib.so (default glibc,tinymalloc,jemalloc,mimalloc,"
                         "tcmalloc + those of --allocators-file)")
    ap.add_argument("--allocators-file", action="append", default=[], metavar="FILE",
                    help="lines `name = /path/lib.so [version]` (see bench/allocators.py --help)")
    ap.add_argument("--runs", type=int, help="timed runs per cell (default 10; 2 at the quick and tiny scales; "
                                             "0: none, only the checked mem run of each block)")
    ap.add_argument("--warmup", type=int, help="hyperfine warm-up runs per block (default 1; 0 at quick/tiny)")
    ap.add_argument("--blocks", type=int,
                    help="rounds the runs are split into; each round shuffles the allocators "
                         "(default min(3, runs); 1 at quick/tiny)")
    ap.add_argument("--seed", type=int, help="seed of the shuffle (default: from the clock; recorded)")
    ap.add_argument("--manifest", action="append", metavar="PATH", help="manifest file or folder (default bench/manifest)")
    ap.add_argument("--results-dir", default=os.path.join(ROOT, "results"), metavar="DIR")
    ap.add_argument("--run-id", metavar="ID", help="name of the run folder (default DATE-TIME-SCALE[-sIofN])")
    ap.add_argument("--resume", metavar="RUN_ID", help="finish the run RUN_ID (a folder name in --results-dir or a path)")
    ap.add_argument("--shard", metavar="I/N", help="run only the I-th of N shares of the workloads")
    ap.add_argument("--host", metavar="NAME",
                    help="name of this machine in the records and reports (default: its host name); "
                         "bench/parallel.py names each host as it was given")
    ap.add_argument("--no-strace", action="store_true", help="skip the strace run")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency run")
    ap.add_argument("--no-build", action="store_true", help="do not run the workloads' build commands")
    ap.add_argument("--no-plots", action="store_true", help="report without plots")
    ap.add_argument("--no-latest", action="store_true", help="do not point results/latest at this run")
    ap.add_argument("--sample-ms", type=float, default=20, help="RSS sampling period of the mem runs (default 20)")
    ap.add_argument("--busy-threshold", type=float, default=BUSY_THRESHOLD, metavar="SHARE",
                    help=f"a step is busy when other processes take more than this share of the machine's CPU "
                         f"time (default {BUSY_THRESHOLD})")
    ap.add_argument("--quiet-machine", type=float, nargs="?", const=QUIET_LIMIT, metavar="SECONDS",
                    help=f"wait until the machine is quiet before starting, at most SECONDS (default "
                         f"{QUIET_LIMIT}); still busy then: exit 4, nothing run")
    ap.add_argument("--interleave", action="store_true",
                    help="order the steps round by round over all workloads (every cell's round r, shuffled, "
                         "before any round r+1) instead of workload by workload")
    ap.add_argument("--pin", action="store_true",
                    help="run the workloads the manifest marks single-threaded on one CPU (taskset)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any cell failed (default: exit 0, "
                                                          "the FAIL cells are results)")
    ap.add_argument("--dry-run", action="store_true", help="print the matrix and the step count, run nothing")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return ap.parse_args(argv)


def new_plan(args):
    if args.runs is not None and args.runs < 0:
        raise BenchError(f"--runs must be 0 or more, not {args.runs}")
    small = args.scale in ("quick", "tiny")   # a smoke run: fewer runs, one round
    warmup = args.warmup if args.warmup is not None else (0 if small else 1)
    if warmup < 0:
        raise BenchError(f"--warmup must be 0 or more, not {warmup}")
    runs = args.runs if args.runs is not None else (2 if small else 10)
    # --runs 0: no timed runs, one checked mem run per cell (output, preload probe, memory):
    # for programs whose output is the result, such as the heap-error probes
    blocks = args.blocks if args.blocks is not None else (1 if small or not runs else min(3, runs))
    # with --runs 0 each block is one more checked mem run per cell
    if blocks < 1 or (runs and blocks > runs):
        raise BenchError(f"--blocks must be between 1 and --runs ({runs}), not {blocks}" if runs else
                         f"--blocks must be 1 or more, not {blocks}")
    if args.sample_ms < 0:
        raise BenchError("--sample-ms must be 0 (off) or more")
    if not 0 < args.busy_threshold < 1:
        raise BenchError(f"--busy-threshold must be a share between 0 and 1, not {args.busy_threshold}")
    if args.run_id is not None and not benchlib.NAME_RE.fullmatch(args.run_id):
        raise BenchError(f"bad --run-id {args.run_id!r} (letters, digits, _.+- only)")
    if args.host is not None and not benchlib.NAME_RE.fullmatch(args.host):
        raise BenchError(f"bad --host {args.host!r} (letters, digits, _.+- only)")
    shard = parse_shard(args.shard) if args.shard else (1, 1)
    counts = mf.parse_threads(args.threads) if args.threads else mf.default_thread_counts()
    workloads = mf.select(mf.load(args.manifest, counts), args.workloads)
    workloads = [mf.resolve(w, args.scale) for w in workloads]
    if shard != (1, 1):
        workloads = shard_workloads(workloads, *shard)
    if not workloads:
        raise BenchError("no workload selected" + (f" in shard {args.shard}" if args.shard else
                                                   " (the manifest folder has none)"))
    allocs = registry.resolve(args.allocators, args.allocators_file)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % (2 ** 31)
    opts = {"scale": args.scale, "runs": runs, "blocks": blocks, "warmup": warmup, "seed": seed,
            "shard": f"{shard[0]}/{shard[1]}", "strace": not args.no_strace, "latency": not args.no_latency,
            "no_build": args.no_build, "sample_ms": args.sample_ms, "busy_threshold": args.busy_threshold,
            "pin": args.pin, "quiet_machine": args.quiet_machine, "threads": counts,
            "interleave": args.interleave}
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S") + f"-{args.scale}" + \
        (f"-s{shard[0]}of{shard[1]}" if shard != (1, 1) else "")
    return {"run_id": run_id, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "options": opts, "allocators": allocs, "workloads": workloads,
            "steps": build_plan(workloads, allocs, opts)}


def check_resume(plan, env):
    # A run's ratios compare runs of one machine: its missing steps are measured where the
    # others were, or not at all.
    here = socket.gethostname()
    started = env.get("hostname", env.get("host"))
    if started and started != here:
        raise BenchError(f"run {plan['run_id']} started on host {started}, this is {here}: resume it there, "
                         "or start a new run")
    for a in plan["allocators"]:
        if a.get("lib"):
            if not os.path.exists(a["lib"]):
                raise BenchError(f"allocator {a['name']}: library {a['lib']} is gone; cannot resume", EXIT_MISSING)
            if a.get("sha256") and benchlib.sha256_file(a["lib"]) != a["sha256"]:
                raise BenchError(f"allocator {a['name']}: {a['lib']} changed since the run started; "
                                 "start a new run instead of resuming")


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.resume:
            for opt in ("workloads", "allocators", "runs", "blocks", "warmup", "seed", "shard", "run_id", "threads",
                        "host"):
                if getattr(args, opt) is not None:
                    raise BenchError(f"--{opt.replace('_', '-')} cannot be changed when resuming: "
                                     "a resumed run keeps its matrix")
            run_dir = args.resume if os.sep in args.resume else os.path.join(args.results_dir, args.resume)
            run_dir = os.path.abspath(run_dir)
            if not os.path.exists(os.path.join(run_dir, "plan.json")):
                raise BenchError(f"--resume {args.resume}: no run at {run_dir}")
            plan = benchlib.read_json(os.path.join(run_dir, "plan.json"))
            check_resume(plan, benchlib.read_json(os.path.join(run_dir, "env.json")))
        else:
            plan = new_plan(args)
            run_dir = os.path.abspath(os.path.join(args.results_dir, plan["run_id"]))
        if args.dry_run:
            o = plan["options"]
            print(f"run {plan['run_id']}: {len(plan['workloads'])} workloads x {len(plan['allocators'])} allocators, "
                  f"{o['runs']} runs in {o['blocks']} blocks (+{o['warmup']} warm-up each), {len(plan['steps'])} steps")
            print("workloads: " + " ".join(w["name"] for w in plan["workloads"]))
            print("allocators: " + " ".join(f"{a['name']}({a.get('version')})" for a in plan["allocators"]))
            return 0
        if plan["options"]["runs"]:
            need_tool("hyperfine", "times every run")
        plan["time_bin"] = gnu_time()
        if plan["options"]["strace"]:
            need_tool("strace", "counts the memory system calls; or give --no-strace")
        plan["probe"] = ensure_probe()
        if plan["options"].get("pin"):
            need_tool("taskset", "pins single-threaded workloads (Debian util-linux)")
        if args.quiet_machine is not None:
            if args.quiet_machine < 0:
                raise BenchError("--quiet-machine takes a number of seconds, 0 or more")
            thr = plan["options"].get("busy_threshold", BUSY_THRESHOLD)
            ncpu = len(benchlib.usable_cpus())
            ok, share, load = benchlib.wait_quiet(args.quiet_machine, thr, ncpu,
                                                  log=(lambda m: None) if args.quiet else print)
            if not ok:
                raise BenchError(f"the machine stayed busy for {args.quiet_machine:.0f} s: other processes took "
                                 f"{share * 100:.0f} % of the CPU time (threshold {thr * 100:.0f} %), "
                                 f"1-minute load average {load:.2f} on {ncpu} CPUs; nothing was run", EXIT_BUSY)
        if not args.resume:
            if os.path.exists(run_dir):
                raise BenchError(f"run {plan['run_id']} exists at {run_dir}; resume it with --resume {plan['run_id']}")
            os.makedirs(os.path.join(run_dir, "raw"))
            benchlib.write_json(os.path.join(run_dir, "plan.json"), plan)
            benchlib.write_json(os.path.join(run_dir, "env.json"), benchlib.collect_env(plan["allocators"], args.host))
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return e.code

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    runner = Runner(run_dir, plan, quiet=args.quiet)
    o = plan["options"]
    if not args.quiet:
        print(f"bench run {plan['run_id']} -> {os.path.relpath(run_dir, os.getcwd())}\n"
              f"  {len(plan['workloads'])} workloads x {len(plan['allocators'])} allocators "
              f"({', '.join(a['name'] for a in plan['allocators'])}), scale {o['scale']}, "
              f"{o['runs']} runs in {o['blocks']} blocks, seed {o['seed']}", flush=True)
    tab = tabulate
    try:
        nfail = runner.run()
    except KeyboardInterrupt:
        print(f"\nbench: interrupted; finished steps are kept. Resume with:\n"
              f"  bench/run.py --resume {plan['run_id']}" +
              (f" --results-dir {args.results_dir}" if os.path.abspath(args.results_dir) !=
               os.path.join(ROOT, "results") else ""), file=sys.stderr)
        try:
            tab.tabulate(run_dir, plots=False)
        except Exception as e:  # a partial report is a courtesy; the raw data is what counts
            print(f"bench: partial report failed: {e}", file=sys.stderr)
        return benchlib.EXIT_INTERRUPTED
    env_end = os.path.join(run_dir, "env-end.json")
    benchlib.write_json(env_end, {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                  "loadavg": benchlib.read_text("/proc/loadavg").strip()})
    summary = tab.tabulate(run_dir, plots=not args.no_plots)
    if not args.no_latest:
        update_latest(os.path.dirname(run_dir), os.path.basename(run_dir))
    if not args.quiet:
        print(f"\nreport: {os.path.relpath(os.path.join(run_dir, 'report.md'), os.getcwd())}")
        for line in tab.summary_lines(summary):
            print("  " + line)
    if nfail:
        print(f"bench: {nfail} cell(s) FAIL (in the report)" +
              ("; --strict: exit 1" if args.strict else ""), file=sys.stderr)
    return benchlib.EXIT_FAILED if nfail and args.strict else benchlib.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
