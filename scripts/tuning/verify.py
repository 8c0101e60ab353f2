"""Profile a registered workload and measure tinymalloc's default against the tuned configuration.

The bench harness (bench/run.py) has no way yet to run one allocator with two environments, so
this module drives the runs itself with the harness's own pieces (bench/manifest.py to resolve
the workload, bench/benchlib.py to run and measure a process, parse `strace -c`): the same
commands, checks, GNU time rusage and RSS sampling as a harness "mem" run, the same
`strace -f -c -e trace=%memory` run. The two configurations alternate in a shuffled order in
every repetition, so a drifting machine does not favour either.
"""
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402
import manifest as mf  # noqa: E402

from . import classes as C  # noqa: E402
from . import profile as P  # noqa: E402

LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
# The library every run of one invocation uses: a private copy taken at the start, so a rebuild
# of build/ by someone else in the middle of a measurement cannot mix two builds.
RUN_LIB = {"path": LIB, "sha256": None}


def freeze_lib(workdir):
    dst = os.path.join(workdir, "libtinymalloc.so")
    shutil.copy2(os.path.realpath(LIB), dst)
    RUN_LIB.update(path=dst, sha256=benchlib.sha256_file(dst))
    return dst
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


class TuneError(Exception):
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def base_env(w):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "TINYMALLOC_CONF", "TMBENCH_PROBE_FILE", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    env.update(w.get("env") or {})
    return env


def resolve_workload(name, scale):
    try:
        wl = mf.load()
        w = mf.select(wl, name)[0]
        return mf.resolve(w, scale)
    except benchlib.BenchError as e:
        raise TuneError(str(e), EXIT_USAGE)


def make_ready(w, workdir, no_build=False):
    """The workload's build and prepare commands, as the harness runs them."""
    if not os.path.exists(LIB):
        raise TuneError(f"{LIB} is missing: run `make lib`", EXIT_MISSING)
    if w.get("build") and not no_build:
        logf = os.path.join(workdir, "build.log")
        with open(logf, "w") as lf:
            p = subprocess.run(w["build"], cwd=ROOT, stdout=lf, stderr=subprocess.STDOUT)
        if p.returncode:
            raise TuneError(f"build `{' '.join(w['build'])}` failed: see {logf}", EXIT_FAILED)
    freeze_lib(workdir)
    if w.get("prepare"):
        os.makedirs(w["cache_dir"], exist_ok=True)
        env = base_env(w)
        env.update({"TMBENCH_CACHE": w["cache_dir"], "TMBENCH_ROOT": ROOT})
        so, se = os.path.join(workdir, "prepare.stdout"), os.path.join(workdir, "prepare.stderr")
        log(f"prepare {w['name']}: {' '.join(w['prepare'])}")
        rec = benchlib.run_measured(w["prepare"], env, w["cwd"], max(600, 10 * w["timeout"]), so, se, 0)
        prob = benchlib.status_problem(rec, 0)
        if prob:
            code = EXIT_MISSING if rec.get("exit") == 3 else EXIT_FAILED
            raise TuneError(f"prepare of {w['name']} failed: {prob}: {benchlib.last_line(benchlib.tail(se))}", code)


def check_output(w, rec, so, se):
    """None when the run passed the workload's exit and stdout checks, else why not."""
    prob = benchlib.status_problem(rec, w["check"].get("exit", 0))
    if prob:
        return f"{prob}: {benchlib.last_line(benchlib.tail(se))}"
    rx = w["check"].get("stdout_regex")
    if rx and not re.search(rx, benchlib.read_text(so), re.M):
        return f"stdout does not match {rx!r}"
    return None


def run_check_cmd(w, so, se, conf_name):
    cmd = w["check"].get("cmd")
    if not cmd:
        return None
    env = base_env(w)
    env.update({"TMBENCH_STDOUT": so, "TMBENCH_STDERR": se, "TMBENCH_ALLOCATOR": f"tinymalloc-{conf_name}",
                "TMBENCH_WORKLOAD": w["name"], "TMBENCH_CACHE": w["cache_dir"]})
    try:
        p = subprocess.run(cmd, cwd=w["cwd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=w["check"].get("timeout") or w["timeout"], text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return "check.cmd timed out"
    return None if p.returncode == 0 else f"check.cmd failed ({p.returncode}): {benchlib.last_line(p.stdout)}"


# ---------------------------------------------------------------------------------------------
# profiling

def profile_workload(w, workdir):
    """One run of the workload with TINYMALLOC_CONF=profile:... -> list of profile files."""
    pdir = os.path.join(workdir, "profiles")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    env = base_env(w)
    env["TINYMALLOC_CONF"] = f"profile:{pdir}/%p.json"
    so, se = os.path.join(workdir, "profile.stdout"), os.path.join(workdir, "profile.stderr")
    log(f"profile {w['name']} ({w['scale']}): one run with TINYMALLOC_CONF={env['TINYMALLOC_CONF']}")
    rec = benchlib.run_measured([shutil.which("env") or "/usr/bin/env", f"LD_PRELOAD={RUN_LIB['path']}"] + w["argv"], env,
                                w["cwd"], 2 * w["timeout"], so, se, 0)
    err = benchlib.read_text(se)
    if "ignoring 'profile:" in err:
        raise TuneError("this build of tinymalloc has no profile mode (TINYMALLOC_CONF says: "
                        + benchlib.last_line([ln for ln in err.splitlines() if "profile:" in ln][0]) + ")",
                        EXIT_MISSING)
    prob = check_output(w, rec, so, se)
    if prob:
        raise TuneError(f"the profiling run of {w['name']} failed: {prob}", EXIT_FAILED)
    files = sorted(os.path.join(pdir, f) for f in os.listdir(pdir) if f.endswith(".json"))
    if not files:
        raise TuneError(f"the profiling run of {w['name']} wrote no profile in {pdir}", EXIT_FAILED)
    return files, rec


# ---------------------------------------------------------------------------------------------
# measuring

def need_tools(strace=True):
    if not os.path.exists("/usr/bin/time"):
        raise TuneError("GNU time (/usr/bin/time) is missing: apt-get install time", EXIT_MISSING)
    if strace and not shutil.which("strace"):
        raise TuneError("strace is missing: apt-get install strace", EXIT_MISSING)


def measured_run(w, conf, workdir, tag):
    env = base_env(w)
    if conf:
        env["TINYMALLOC_CONF"] = conf
    so, se = os.path.join(workdir, f"{tag}.stdout"), os.path.join(workdir, f"{tag}.stderr")
    rec = benchlib.run_measured([shutil.which("env") or "/usr/bin/env", f"LD_PRELOAD={RUN_LIB['path']}"] + w["argv"], env,
                                w["cwd"], 2 * w["timeout"], so, se, 0.05, time_bin="/usr/bin/time")
    rec.pop("rss_samples", None)
    rec["problem"] = check_output(w, rec, so, se)
    warn = [ln for ln in benchlib.read_text(se).splitlines() if "TINYMALLOC_CONF" in ln]
    if warn and not rec["problem"]:
        rec["problem"] = f"the allocator rejected the configuration: {warn[0]}"
    return rec, so, se


def strace_run(w, conf, workdir, tag, seccomp):
    """strace -f -c of one run, with tinymalloc's statistics (stats:json) of every process."""
    sdir = os.path.join(workdir, f"{tag}-stats")
    shutil.rmtree(sdir, ignore_errors=True)
    os.makedirs(sdir)
    full = ",".join(x for x in (conf, f"stats:json,stats_file:{sdir}/%p.json") if x)
    out = os.path.join(workdir, f"{tag}.strace")
    pre = ["strace", "-f", "-c", "-o", out, "-e", "trace=%memory"] + (["--seccomp-bpf"] if seccomp else [])
    pre += ["-E", f"LD_PRELOAD={RUN_LIB['path']}", "-E", f"TINYMALLOC_CONF={full}"]
    env = base_env(w)
    so, se = os.path.join(workdir, f"{tag}.stdout"), os.path.join(workdir, f"{tag}.stderr")
    rec = benchlib.run_measured(pre + w["argv"], env, w["cwd"], 5 * w["timeout"] + 30, so, se, 0)
    res = {"problem": check_output(w, rec, so, se)}
    if not res["problem"]:
        try:
            res["oscalls"] = benchlib.oscall_counts(benchlib.parse_strace_c(benchlib.read_text(out)))
        except (OSError, ValueError) as e:
            res["problem"] = f"strace gave no summary: {e}"
    res["stats"] = read_stats(sdir)
    if not res["problem"] and res["stats"]["processes"] == 0:
        res["problem"] = "no process wrote tinymalloc statistics: was tinymalloc preloaded?"
    return res


def read_stats(sdir):
    """Sum tinymalloc's stats:json files of one run (one per process)."""
    tot = {"processes": 0, "slab_allocs": 0, "slab_peak_bytes": 0, "huge_allocs": 0,
           "os": {"mmap": 0, "munmap": 0, "madvise": 0, "mremap": 0}, "classes": {}}
    for f in sorted(os.listdir(sdir)):
        try:
            with open(os.path.join(sdir, f)) as fh:
                s = json.load(fh)
        except (OSError, ValueError):
            continue
        tot["processes"] += 1
        for c in s.get("classes", []):
            tot["slab_allocs"] += c.get("allocs", 0)
            tot["slab_peak_bytes"] += c.get("peak_bytes", 0)
            k = str(c.get("size"))
            d = tot["classes"].setdefault(k, {"allocs": 0, "peak_bytes": 0})
            d["allocs"] += c.get("allocs", 0)
            d["peak_bytes"] = max(d["peak_bytes"], c.get("peak_bytes", 0))
        tot["huge_allocs"] += s.get("huge", {}).get("allocs", 0)
        for k in tot["os"]:
            tot["os"][k] += s.get("os", {}).get(k, 0)
    return tot


def measure(w, configs, workdir, runs, seed, strace=True):
    """configs: [(name, conf)]. Interleaved, shuffled repetitions; one strace run each."""
    need_tools(strace)
    rng = random.Random(seed)
    recs = {name: [] for name, _ in configs}
    failures = []
    checked = set()
    for rep in range(1, runs + 1):
        order = configs[:]
        rng.shuffle(order)
        for name, conf in order:
            rec, so, se = measured_run(w, conf, workdir, f"{name}-{rep}")
            if not rec["problem"] and name not in checked:
                rec["problem"] = run_check_cmd(w, so, se, name)
                checked.add(name)
            rec["rep"] = rep
            recs[name].append(rec)
            status = "FAIL " + rec["problem"] if rec["problem"] else \
                f"{rec['wall_s']:.3f} s, {rec['max_rss_kb']} KiB"
            log(f"  run {rep}/{runs} {name}: {status}")
            if rec["problem"]:
                failures.append(f"{name} run {rep}: {rec['problem']}")
    st = {}
    if strace:
        seccomp = benchlib.strace_seccomp_ok()
        order = configs[:]
        rng.shuffle(order)
        for name, conf in order:
            st[name] = strace_run(w, conf, workdir, f"{name}-strace", seccomp)
            log(f"  strace {name}: {st[name].get('problem') or st[name].get('oscalls')}")
            if st[name]["problem"]:
                failures.append(f"{name} strace: {st[name]['problem']}")
    return {"runs": recs, "strace": st, "failures": failures, "seed": seed}


# ---------------------------------------------------------------------------------------------
# summarising

def summarise(meas, a="default", b="tuned"):
    """Medians, spread and paired ratios (b / a within each repetition)."""
    def vals(name, key):
        out = []
        for r in meas["runs"][name]:
            if r["problem"]:
                continue
            v = r.get(key)
            if v is not None:
                out.append(v)
        return out

    rows = {}
    for key in ("wall_s", "user_s", "sys_s", "max_rss_kb", "tree_peak_sum_kb", "minflt"):
        va, vb = vals(a, key), vals(b, key)
        ra = {r["rep"]: r.get(key) for r in meas["runs"][a] if not r["problem"]}
        rb = {r["rep"]: r.get(key) for r in meas["runs"][b] if not r["problem"]}
        ratios = [rb[k] / ra[k] for k in ra if k in rb and ra[k] and rb[k] is not None]
        rows[key] = {
            a: {"median": statistics.median(va) if va else None, "min": min(va, default=None),
                "max": max(va, default=None), "n": len(va)},
            b: {"median": statistics.median(vb) if vb else None, "min": min(vb, default=None),
                "max": max(vb, default=None), "n": len(vb)},
            "ratio": {"median": statistics.median(ratios) if ratios else None, "min": min(ratios, default=None),
                      "max": max(ratios, default=None), "n": len(ratios)},
        }
    return rows


def verdict(ratio, tol=0.0):
    """'lower', 'higher' or 'no difference' from the paired ratios' range."""
    if ratio["median"] is None:
        return "not measured"
    if ratio["n"] < 3:
        return "too few repetitions to say"
    if ratio["max"] < 1 - tol:
        return "lower in every repetition"
    if ratio["min"] > 1 + tol:
        return "higher in every repetition"
    return "no consistent difference (the ratios straddle 1)"


# ---------------------------------------------------------------------------------------------
# the profile mode's own cost

def profile_overhead(names, scale, runs, seed, no_build=False):
    """Wall time of each workload under tinymalloc with profiling off and on, interleaved.
    -> list of (workload, summary or None, failures)."""
    out = []
    for name in names:
        w = resolve_workload(name, scale)
        workdir = os.path.join(ROOT, "build", "tuning", "overhead", w["name"])
        os.makedirs(workdir, exist_ok=True)
        try:
            make_ready(w, workdir, no_build)
        except TuneError as e:
            out.append((w["name"], None, [str(e)]))
            continue
        pdir = os.path.join(workdir, "profiles")
        shutil.rmtree(pdir, ignore_errors=True)
        os.makedirs(pdir)
        log(f"overhead {w['name']} ({scale})")
        meas = measure(w, [("off", ""), ("profile", f"profile:{pdir}/%p.json")], workdir, runs, seed, strace=False)
        nfiles = len(os.listdir(pdir))
        shutil.rmtree(pdir, ignore_errors=True)
        fails = list(meas["failures"])
        if not fails and nfiles == 0:
            fails.append("the profiled runs wrote no profile")
        out.append((w["name"], summarise(meas, "off", "profile"), fails))
    return out
