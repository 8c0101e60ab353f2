"""Shared pieces of the bench harness: running a measured process, parsing what the tools
print (hyperfine JSON, `strace -f -c`, the probe file, `TMBENCH {json}` lines), checks,
statistics and the machine's environment.

Python standard library only. Imported by bench/run.py and scripts/*.py.
"""
import hashlib
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Exit codes shared by every bench script (documented in each --help).
EXIT_OK = 0
EXIT_FAILED = 1      # a workload failed or a measurement failed
EXIT_USAGE = 2       # bad option, unknown workload / allocator, bad manifest
EXIT_MISSING = 3     # a missing dependency: package, program, library
EXIT_BUSY = 4        # the machine stayed busy past --quiet-machine's limit
EXIT_INTERRUPTED = 130

MEMORY_SYSCALLS = ("mmap", "munmap", "mremap", "brk", "madvise")


# A name that is also a folder or file name and a word on a command line: run ids, hosts,
# allocators, workloads.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class BenchError(Exception):
    """An error with an exit code; the message names what is wrong."""

    def __init__(self, msg, code=EXIT_USAGE):
        super().__init__(msg)
        self.code = code


# ---------------------------------------------------------------------------------------
# statistics

def median(xs):
    return quantile(xs, 0.5)


def quantile(xs, q):
    """Linear interpolation between closest ranks (numpy's default); None for no data."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


# ---------------------------------------------------------------------------------------
# parsers

def parse_hyperfine(text):
    """hyperfine --export-json -> dict(times, exit_codes, user, system, command).

    Raises ValueError on a file that is not hyperfine's JSON."""
    data = json.loads(text)
    res = data.get("results") if isinstance(data, dict) else None
    if not res or not isinstance(res, list):
        raise ValueError("no 'results' list in hyperfine JSON")
    r = res[0]
    times = r.get("times")
    if not isinstance(times, list):
        raise ValueError("no 'times' list in hyperfine JSON")
    codes = r.get("exit_codes")
    if not isinstance(codes, list):
        codes = [None] * len(times)
    return {
        "command": r.get("command"),
        "times": [float(t) for t in times],
        "exit_codes": codes,
        "user": r.get("user"),
        "system": r.get("system"),
    }


def parse_strace_c(text):
    """`strace -c` summary -> {"syscalls": {name: {"calls", "errors", "seconds"}}, "total_calls"}.

    Columns are found from the header line, so blank `errors` (and blank `usecs/call` in
    older versions) are read right. Raises ValueError when no summary table is present."""
    lines = text.splitlines()
    hdr_i = next((i for i, l in enumerate(lines) if l.lstrip().startswith("% time") and "syscall" in l), None)
    if hdr_i is None:
        raise ValueError("no strace -c summary header")
    hdr = lines[hdr_i]
    # right edge of every numeric column, from the header words
    cols = []
    for name in ("% time", "seconds", "usecs/call", "calls", "errors"):
        at = hdr.find(name)
        if at >= 0:
            cols.append((name, at + len(name)))
    syscalls = {}
    total = None
    for line in lines[hdr_i + 1:]:
        if not line.strip() or set(line.strip()) <= set("- "):
            continue
        toks = list(re.finditer(r"\S+", line))
        if len(toks) < 2:
            continue
        name = toks[-1].group()
        vals = {}
        for t in toks[:-1]:
            end = t.end()
            col = min(cols, key=lambda c: abs(c[1] - end))[0]
            vals[col] = t.group()
        try:
            calls = int(vals.get("calls", "0"))
            errors = int(vals.get("errors", "0"))
            secs = float(vals.get("seconds", "0"))
        except ValueError:
            continue
        if name == "total":
            total = calls
        else:
            syscalls[name] = {"calls": calls, "errors": errors, "seconds": secs}
    if total is None:
        total = sum(v["calls"] for v in syscalls.values())
    return {"syscalls": syscalls, "total_calls": total}


def oscall_counts(strace):
    """The memory syscalls of a parsed strace summary; absent ones count 0."""
    sc = strace.get("syscalls", {})
    return {n: sc.get(n, {}).get("calls", 0) for n in MEMORY_SYSCALLS}


def parse_probe(text):
    """Probe file -> list of (pid, libpath, tag) with tag '' (constructor) or 'fini'."""
    recs = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].isdigit():
            continue
        recs.append((int(parts[0]), parts[1], parts[2] if len(parts) > 2 else ""))
    return recs


def parse_tmbench(stdout):
    """Last `TMBENCH {json}` line of stdout -> (dict or None, error or None)."""
    found = None
    for line in stdout.splitlines():
        if line.startswith("TMBENCH "):
            found = line[len("TMBENCH "):]
    if found is None:
        return None, None
    try:
        obj = json.loads(found)
    except ValueError as e:
        return None, f"bad TMBENCH line: {e}"
    if not isinstance(obj, dict):
        return None, "bad TMBENCH line: not a JSON object"
    return obj, None


def same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


LIBC_RE = re.compile(r"(^|/)libc(-[\d.]+)?\.so(\.\d+)*$")


def served_by(path, alloc):
    """True when `path` (from dladdr) is the allocator's library (libc for the system one)."""
    if not path or path in ("?", "(unresolved)"):
        return False
    if alloc.get("lib"):
        return same_file(path, alloc["lib"])
    return bool(LIBC_RE.search(path)) or (alloc.get("expect") and same_file(path, alloc["expect"]))


def check_probe(records, alloc, min_processes=1):
    """None when every probe record says malloc came from `alloc`, else the reason."""
    inits = [r for r in records if r[2] == ""]
    if not inits:
        return ("no probe record: the preload was not applied "
                "(static binary, or the program dropped LD_PRELOAD)")
    for pid, path, _tag in records:
        if not served_by(path, alloc):
            want = alloc.get("lib") or "libc"
            return f"malloc of pid {pid} served by {path}, not {want}"
    n = len({pid for pid, _, _ in inits})
    if n < min_processes:
        return f"only {n} of {min_processes} runs left a probe record"
    return None


# ---------------------------------------------------------------------------------------
# running a measured process: rusage via wait4 plus RSS of the process tree sampled

def _children(pid):
    out = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return out


def process_tree(root):
    seen, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(_children(p))
    return seen


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every `interval` seconds."""

    PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

    def __init__(self, root, interval, skip_root=False):
        super().__init__(daemon=True)
        self.root, self.interval, self.skip_root = root, interval, skip_root
        self.samples = []          # [seconds, kb]
        self.peak_sum_kb = 0
        self.max_procs = 0
        self._stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def sample_once(self):
        total, n = 0, 0
        for pid in process_tree(self.root):
            if self.skip_root and pid == self.root:
                continue
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * self.PAGE_KB
                n += 1
            except (OSError, ValueError, IndexError):
                pass
        if n:
            self.samples.append([round(time.monotonic() - self.t0, 4), total])
            self.peak_sum_kb = max(self.peak_sum_kb, total)
            self.max_procs = max(self.max_procs, n)

    def run(self):
        while not self._stop_ev.is_set():
            self.sample_once()
            self._stop_ev.wait(self.interval)

    def stop(self):
        self._stop_ev.set()
        self.join()


def thin(samples, limit=1000):
    if len(samples) <= limit:
        return samples
    step = math.ceil(len(samples) / limit)
    out = samples[::step]
    if out[-1] is not samples[-1]:
        out.append(samples[-1])
    return out


def signal_name(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


TIME_FORMAT = "TMRUSAGE %e %U %S %M %R %F %w %c %x"
TIME_FIELDS = ("wall_s", "user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "nvcsw", "nivcsw", "exit")


def parse_time_output(text):
    """GNU time output written with -f TIME_FORMAT -> dict of TIME_FIELDS plus `signal`.

    GNU time adds a line `Command terminated by signal N` (then `exit` is meaningless) or
    `Command exited with non-zero status N` before the format line. Raises ValueError when
    the format line is missing (time itself was killed)."""
    out = None
    sig = None
    for line in text.splitlines():
        m = re.match(r"Command terminated by signal (\d+)", line)
        if m:
            sig = int(m.group(1))
        if line.startswith("TMRUSAGE "):
            vals = line.split()[1:]
            if len(vals) != len(TIME_FIELDS):
                raise ValueError(f"bad GNU time line {line!r}")
            out = {}
            for k, v in zip(TIME_FIELDS, vals):
                out[k] = float(v) if k.endswith("_s") else int(v)
    if out is None:
        raise ValueError("no GNU time record")
    out["signal"] = sig
    if sig is not None:
        out["exit"] = None
    return out


def run_measured(argv, env, cwd, timeout, stdout_path, stderr_path, sample_interval=0.02, time_bin=None):
    """Run argv in its own session; return its rusage, exit status, whether it timed out and the
    sampled sum of RSS over the processes alive at once (`tree_peak_sum_kb`, `rss_samples`).

    With time_bin (GNU time) the program runs as the child of GNU time, which reports the
    rusage of the program's tree (ru_maxrss = the largest process). That matters: Linux keeps
    a process's peak RSS across execve, so a child forked straight from this Python process
    would report Python's RSS as its floor. Without time_bin the rusage comes from wait4.
    Ctrl-C kills the tree and re-raises."""
    rfile = None
    if time_bin:
        rfile = stdout_path + ".rusage"
        argv = [time_bin, "-o", rfile, "-f", TIME_FORMAT] + list(argv)
    t0 = time.monotonic()
    with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=so, stderr=se,
                             start_new_session=True)
    sampler = TreeSampler(p.pid, sample_interval, skip_root=bool(time_bin)) if sample_interval else None
    if sampler:
        sampler.start()
    timed_out = threading.Event()

    def kill_tree():
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass

    def on_timeout():
        timed_out.set()
        kill_tree()

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    except BaseException:
        kill_tree()
        try:
            os.wait4(p.pid, 0)
        except OSError:
            pass
        p.returncode = -9
        if sampler:
            sampler.stop()
        raise
    finally:
        timer.cancel()
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    kill_tree()  # whatever the program left behind in its session
    if sampler:
        sampler.stop()
    rec = {
        "argv": argv,
        "cwd": cwd,
        "wall_s": round(wall, 6),
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out.is_set(),
        "timeout_s": timeout,
        "rusage_from": "wait4",
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "max_rss_kb": ru.ru_maxrss,
        "minflt": ru.ru_minflt,
        "majflt": ru.ru_majflt,
        "nvcsw": ru.ru_nvcsw,
        "nivcsw": ru.ru_nivcsw,
    }
    if rfile:
        rec["rusage_from"] = "GNU time"
        try:
            with open(rfile) as f:
                tr = parse_time_output(f.read())
            rec.update({k: v for k, v in tr.items() if k != "wall_s"})
            rec["program_wall_s"] = tr["wall_s"]
        except (OSError, ValueError) as e:
            if not rec["timed_out"] and rec["signal"] is None:
                rec["rusage_error"] = str(e)
            for k in ("user_s", "sys_s", "max_rss_kb", "minflt", "majflt", "nvcsw", "nivcsw"):
                rec[k] = None
        try:
            os.unlink(rfile)
        except OSError:
            pass
    if sampler:
        rec["tree_peak_sum_kb"] = sampler.peak_sum_kb
        rec["tree_max_procs"] = sampler.max_procs
        rec["rss_samples"] = thin(sampler.samples)
        rec["sample_interval_s"] = sample_interval
    return rec


def status_problem(rec, expect_exit=0):
    """None when the run ended as expected, else why not (timeout, signal, exit status)."""
    if rec.get("timed_out"):
        return f"timeout after {rec.get('timeout_s')} s"
    if rec.get("rusage_error"):
        return f"no rusage: {rec['rusage_error']}"
    if rec.get("signal") is not None:
        return f"killed by {signal_name(rec['signal'])}"
    if expect_exit is not None and rec.get("exit") != expect_exit:
        return f"exit status {rec.get('exit')} (expected {expect_exit})"
    return None


def tail(path, nbytes=4096):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def last_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:200] if lines else ""


# ---------------------------------------------------------------------------------------
# noise: the CPU time that processes other than the bench's took while it measured

CLK_TCK = os.sysconf("SC_CLK_TCK")


class CpuClock:
    """A reading of the machine's busy CPU time (/proc/stat) and of this process's own and
    its reaped children's (os.times). Between two readings, busy time that is neither the
    bench's nor its children's was taken by other processes (or by the hypervisor: steal)."""

    def __init__(self):
        self.wall = time.monotonic()
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is inside user already)
        v += [0] * (8 - len(v))
        self.busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK
        self.steal = v[7] / CLK_TCK
        t = os.times()
        self.own = t.user + t.system + t.children_user + t.children_system


def cpu_noise(before, after, ncpu, threshold):
    """What other processes took between two CpuClock readings, as seconds and as a share of
    the machine's CPU time (ncpu x wall); busy when that share is above `threshold`. /proc/stat
    counts in ticks (10 ms), so a step of under a second reads a tick or two of noise: the
    share needs 2 ticks per CPU above the threshold before it counts."""
    wall = max(after.wall - before.wall, 1e-6)
    other = max(0.0, (after.busy - before.busy) - (after.own - before.own))
    steal = max(0.0, after.steal - before.steal)
    share = (other + steal) / (ncpu * wall)
    slack = 2.0 / CLK_TCK / wall
    return {"wall_s": round(wall, 3), "other_cpu_s": round(other, 3), "steal_s": round(steal, 3),
            "other_share": round(share, 4), "busy": share > threshold + slack}


def wait_quiet(limit_s, threshold, ncpu, window=2.0, log=print, loadavg=os.getloadavg,
               max_load=None):
    """Wait until other processes take at most `threshold` of the CPU over `window` seconds and
    the 1-minute load average is at most `max_load` (default half the CPUs, at least 0.5).
    The share says the machine is idle now; the load average says it has been for about a
    minute, so a run does not start while the work just before it still heats the caches
    and the page cache writes back (and its record would carry that load average).
    -> (True, share, load) when both hold within `limit_s`, else (False, share, load)."""
    if max_load is None:
        max_load = max(0.5, ncpu / 2)
    t0 = time.monotonic()
    while True:
        a = CpuClock()
        time.sleep(window)
        n = cpu_noise(a, CpuClock(), ncpu, threshold)
        share, load = n["other_share"], loadavg()[0]
        if not n["busy"] and load <= max_load:
            return True, share, load
        if time.monotonic() - t0 >= limit_s:
            return False, share, load
        log(f"waiting for a quiet machine: other processes take {share * 100:.0f} % of the CPU time, "
            f"1-minute load average {load:.2f} (at most {max_load:.2f})")


# ---------------------------------------------------------------------------------------
# speed: the machine's own speed, timed around every step

SPEED_LOOPS = 400_000   # about 15 ms of pure interpreter work on a 2020s x86 core
SLOW_FACTOR = 1.3       # a step is slow when both probes around it took this much longer than the run's best
BLOCK_SPREAD = 1.25     # a cell is unstable when its blocks' medians differ by more than this factor


def speed_probe(reps=3, cpu=None):
    """Seconds a fixed CPU-bound loop takes, the best of `reps`, on `cpu` when given (the CPU a
    pinned workload runs on). The loop touches no file and makes no system call, so it
    measures only how fast the machine runs code now. A virtual machine can run at a fraction
    of its speed for minutes with no steal time and no other process to show for it; timed
    around every step and set against the run's fastest probe, it marks the steps measured
    while the machine ran slow."""
    old = None
    if cpu is not None:
        try:
            old = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
        except OSError:
            old = None
    try:
        best = None
        for _ in range(reps):
            t0 = time.perf_counter()
            x = 0
            for i in range(SPEED_LOOPS):
                x = (x * 31 + i) & 0xFFFF
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        return best
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)


def _probes(rec):
    return [v for v in (rec.get("speed") or {}).values() if isinstance(v, (int, float)) and v > 0]


def speed_ref(recs):
    """A run's reference speed: its fastest probe over every record (None without probes)."""
    probes = [v for r in recs for v in _probes(r)]
    return min(probes) if probes else None


def slowness(rec, ref):
    """How much slower than `ref` the faster of a step's two probes was: slow on both sides of
    a step, the machine ran slow through it. One probe alone also catches the few seconds after
    a step that filled and freed a lot of memory (on idle-threads, five cells whose blocks
    agreed within 1.12x), so it is not enough; a phase that begins or ends within a step shows
    in the blocks' disagreement instead (block_spread). None without probes."""
    vs = _probes(rec)
    return min(vs) / ref if vs and ref else None


def block_spread(recs):
    """The largest over the smallest median of a cell's timed blocks (None with fewer than 2).
    Blocks run minutes apart in shuffled order, so blocks that disagree mean the machine's
    speed changed under the cell, whatever the probes saw."""
    meds = [median(r["times"]) for r in recs if r.get("kind") == "time" and r.get("times")]
    return max(meds) / min(meds) if len(meds) >= 2 and min(meds) > 0 else None


def usable_cpus():
    try:
        return sorted(os.sched_getaffinity(0))
    except OSError:
        return list(range(os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------
# files

def list_cli(tool, make, as_json, line):
    """The listing of a module's command line: make() -> rows (a BenchError is printed as
    `tool: message` and its code returned); JSON, or line(row) per row. -> exit status."""
    try:
        rows = make()
    except BenchError as e:
        print(f"{tool}: {e}", file=sys.stderr)
        return e.code
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(line(r))
    return 0


def write_json(path, obj):
    """Atomic: a record on disk is always whole (an interrupted run never leaves half)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(tmp, path)


def read_text(path, errors="replace"):
    with open(path, errors=errors) as f:
        return f.read()


def read_json(path):
    with open(path) as f:
        return json.load(f)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------
# environment

def _cmd_out(argv, cwd=None):
    try:
        return subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def dpkg_version(pkg):
    return _cmd_out(["dpkg-query", "-W", "-f=${Version}", pkg]) or None


def git_commit(root=ROOT, paths=None):
    """HEAD, with -dirty when tracked files differ. results/ does not count: the harness
    itself rewrites results/latest, so a run started after another would always be dirty."""
    head = _cmd_out(["git", "rev-parse", "HEAD"], cwd=root)
    if not head:
        return None
    dirty = _cmd_out(["git", "status", "--porcelain", "--untracked-files=no", "--"]
                     + (paths or [".", ":(exclude)results"]), cwd=root)
    return head[:12] + ("-dirty" if dirty else "")


def cpu_boost():
    """Turbo/boost state where the kernel shows it (cpufreq boost, intel_pstate, amd_pstate)."""
    v = _read("/sys/devices/system/cpu/cpufreq/boost")
    if v:
        return "on" if v == "1" else "off"
    v = _read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if v:
        return "off" if v == "1" else "on"
    v = _read("/sys/devices/system/cpu/amd_pstate/status")
    if v:
        return f"amd_pstate {v}"
    return "not shown by the kernel"


def collect_env(allocators=None, host=None):
    """The machine and its software; `host` names the machine in reports (default its host name)."""
    cpu = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = None
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    try:
        affinity = len(os.sched_getaffinity(0))
    except OSError:
        affinity = None
    glibc = " ".join(platform.libc_ver()) or ""
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or glibc
    except (ValueError, OSError):
        pass
    env = {
        "host": host or socket.gethostname(),
        "hostname": socket.gethostname(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu,
        "cpus_online": os.cpu_count(),
        "cpus_usable": affinity,
        "mem_total_kb": mem_kb,
        "kernel": platform.release(),
        "os": _read("/etc/debian_version") and f"Debian {_read('/etc/debian_version')}",
        "glibc": glibc,
        "libc6_package": dpkg_version("libc6"),
        "thp_enabled": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": _read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") or "not shown by the kernel",
        "cpu_boost": cpu_boost(),
        "loadavg": _read("/proc/loadavg"),
        "project_commit": git_commit(),
        "hyperfine": _cmd_out(["hyperfine", "--version"]),
        "strace": (_cmd_out(["strace", "-V"]).splitlines() or [""])[0],
        "python": platform.python_version(),
    }
    if allocators is not None:
        env["allocators"] = {a["name"]: {"version": a.get("version"), "lib": a.get("lib"),
                                         "package": a.get("package")} for a in allocators}
    return env


def strace_seccomp_ok():
    """Whether this strace and kernel support --seccomp-bpf (far less overhead for -f -c)."""
    try:
        p = subprocess.run(["strace", "-f", "--seccomp-bpf", "-e", "trace=%memory", "-o", os.devnull, "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
