"""The measuring of tune-slabs: the profile runs and the verification, both runs of the bench
runner (bench/run.py).

An allocator here is a *variant* of the runner's registry: one private copy of
build/libtinymalloc.so (taken at the start, so that a rebuild of build/ in the middle of a
measurement cannot mix two builds) with its own TINYMALLOC_CONF. The profile is a run with no
timed runs (`--runs 0`) of the variant `tm-profile`; the verification runs `tm-default` and
the candidates of search.py side by side, shuffled in every block as any bench matrix, timed
by hyperfine, with the runner's build and prepare, output checks, preload probe, RSS runs and
strace run. Each run folder keeps the runner's plan, environment, raw records and report.
"""
import contextlib
import os
import re
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402
import manifest as mf  # noqa: E402
import run as runner  # noqa: E402
import tabulate  # noqa: E402

LIB = os.path.join(ROOT, "build", "libtinymalloc.so")
# The library every run of one invocation uses (see freeze_lib).
RUN_LIB = {"path": LIB, "sha256": None, "version": None}
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


class TuneError(Exception):
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def resolve_workloads(spec, scale, manifest=None, one=False):
    """The workloads `spec` names (a comma list, group:NAME). one: it must name exactly one,
    so a thread sweep must be given with its count (NAME@T)."""
    try:
        ws = mf.select(mf.load(manifest), spec)
        if one and len(ws) != 1:
            raise TuneError(f"{spec} sweeps its thread count: give one count, one of "
                            + ", ".join(w["name"] for w in ws), EXIT_USAGE)
        return [mf.resolve(w, scale) for w in ws]
    except benchlib.BenchError as e:
        raise TuneError(str(e), EXIT_USAGE)


def freeze_lib(workdir):
    if not os.path.exists(LIB):
        raise TuneError(f"{LIB} is missing: run `make lib`", EXIT_MISSING)
    os.makedirs(workdir, exist_ok=True)
    dst = os.path.join(workdir, "libtinymalloc.so")
    shutil.copy2(os.path.realpath(LIB), dst)
    RUN_LIB.update(path=dst, sha256=benchlib.sha256_file(dst),
                   version="git:" + (benchlib.git_commit(ROOT, ["tinymalloc", "Makefile"]) or "unknown"))
    return dst


def bench(ws, variants, results_dir, run_id, runs, seed=None, strace=False, no_build=False, manifest=None):
    """Run the workloads ws under the variants [(name, TINYMALLOC_CONF or "")] of the frozen
    library through bench/run.py; -> the run folder. Its progress goes to stderr, so that
    stdout keeps the recommendation."""
    for _, conf in variants:   # an allocators file cannot carry these (bench/allocators.py)
        if any(ch.isspace() or ch == "#" for ch in conf):
            raise TuneError(f"TINYMALLOC_CONF {conf!r} holds a space or '#'", EXIT_USAGE)
    # A run id is a folder name the runner accepts ([A-Za-z0-9_.+-]); a swept workload's
    # count (random-linear@1) becomes -t1.
    run_id = re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id.replace("@", "-t"))
    os.makedirs(results_dir, exist_ok=True)
    afile = os.path.join(results_dir, f"{run_id}.allocators")
    with open(afile, "w") as f:
        for name, conf in variants:
            f.write(f"{name} = {RUN_LIB['path']} {RUN_LIB['version']}" + (f" TINYMALLOC_CONF={conf}" if conf else "")
                    + "\n")
    argv = ["--workloads", ",".join(w["name"] for w in ws), "--scale", ws[0]["scale"],
            "--allocators", ",".join(n for n, _ in variants), "--allocators-file", afile, "--runs", str(runs),
            "--results-dir", results_dir, "--run-id", run_id, "--no-latency", "--no-latest", "--no-plots"]
    if runs:
        argv += ["--blocks", str(min(runs, 5))]   # a mem run per block: RSS gets an interval too
    argv += (["--seed", str(seed)] if seed is not None else []) + ([] if strace else ["--no-strace"]) + \
        (["--no-build"] if no_build else []) + \
        [x for m in manifest or [] for x in ("--manifest", m)]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            rc = runner.main(argv)
    finally:
        os.unlink(afile)   # plan.json keeps every variant's library, version and environment
    run_dir = os.path.join(results_dir, run_id)
    if rc != benchlib.EXIT_OK:
        raise TuneError(f"the bench run of {', '.join(w['name'] for w in ws)} stopped (exit {rc})",
                        rc if rc in (2, 3) else EXIT_FAILED)
    return run_dir


def cells(run_dir):
    """{workload: {allocator: cell}} of a run (bench/tabulate.py)."""
    cs, _ = tabulate.collect(run_dir)
    out = {}
    for c in cs:
        out.setdefault(c["workload"], {})[c["allocator"]] = c
    return out


def noise_lines(run_dir, default="tm-default"):
    """The machine's noise in a verification run, from its records: how far the default's own
    timed runs and memory runs spread, and how many cells the runner marked busy, slow or
    unstable. A gain smaller than the default's spread needs many runs to clear its interval."""
    cs, meta = tabulate.collect(run_dir)
    L = ["| workload | default's time: median, spread (IQR / median, n) | default's peak RSS: min-max over its memory runs |",
         "|---|---|---|"]
    for c in cs:
        if c["allocator"] != default or c.get("time_median_s") is None:
            continue   # FAIL or incomplete: no figures
        rss = [x for x in c.get("rss_runs_kb") or [] if x]
        L.append(f"| {c['workload']} | {c['time_median_s'] * 1000:.1f} ms, {c.get('spread_pct') or 0:.1f} % "
                 f"(n={c.get('runs')}) | " + (f"{min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB ({len(rss)} runs)"
                                             if rss else "-") + " |")
    marks = {k: sum(1 for c in cs if c.get(k)) for k in ("busy", "slow", "unstable")}
    ref = meta.get("speed_ref_s")

    def count(k, one, many):
        return f"{marks[k]} {one if marks[k] == 1 else many}"
    L += ["", f"Of {len(cs)} cells (workload x variant), {count('busy', 'was', 'were')} measured while another "
          f"process took over 5 % of the CPU, {marks['slow']} while the machine ran slow (the speed probe, fastest "
          + (f"{ref * 1000:.1f} ms" if ref else "not recorded") + f"), and {count('unstable', 'is', 'are')} "
          "unstable (their blocks' medians over 1.25x apart); the run's report marks them."]
    return L


def profile_workloads(ws, workdir, no_build=False, manifest=None):
    """One run of each workload with TINYMALLOC_CONF=profile:... -> the profile files."""
    pdir = os.path.join(workdir, "profiles")
    shutil.rmtree(pdir, ignore_errors=True)
    os.makedirs(pdir)
    names = ", ".join(w["name"] for w in ws)
    log(f"profile {names} ({ws[0]['scale']}): one run each with TINYMALLOC_CONF=profile:{pdir}/%p.json")
    run_id = "profile-" + time.strftime("%Y%m%d-%H%M%S")
    run_dir = bench(ws, [("tm-profile", f"profile:{pdir}/%p.json")], workdir, run_id, 0, no_build=no_build,
                    manifest=manifest)
    for w, cs in cells(run_dir).items():
        err = benchlib.read_text(os.path.join(run_dir, "raw", w, "tm-profile", "mem-1.stderr"))
        if "ignoring 'profile:" in err:
            raise TuneError("this build of tinymalloc has no profile mode (TINYMALLOC_CONF says: "
                            + benchlib.last_line([ln for ln in err.splitlines() if "profile:" in ln][0]) + ")",
                            EXIT_MISSING)
        if cs["tm-profile"]["status"] != "ok":
            raise TuneError(f"the profiling run of {w} failed: {cs['tm-profile']['reason']}", EXIT_FAILED)
    files = sorted(os.path.join(pdir, f) for f in os.listdir(pdir) if f.endswith(".json"))
    if not files:
        raise TuneError(f"the profiling runs of {names} wrote no profile in {pdir}", EXIT_FAILED)
    return files


def profile_overhead(names, scale, runs, seed, results_dir, no_build=False):
    """Wall time of each workload under tinymalloc with profiling off (tm-default) and on
    (tm-profile), in one bench run each. -> [(workload, run folder or None, by-workload cells or
    None, failures)]."""
    out = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in names:
        try:
            ws = resolve_workloads(name, scale, one=True)
            workdir = os.path.join(ROOT, "build", "tuning", "overhead", ws[0]["name"])
            freeze_lib(workdir)
            pdir = os.path.join(workdir, "profiles")
            shutil.rmtree(pdir, ignore_errors=True)
            os.makedirs(pdir)
            log(f"overhead {name} ({scale})")
            run_dir = bench(ws, [("tm-default", ""), ("tm-profile", f"profile:{pdir}/%p.json")], results_dir,
                            f"overhead-{name}-{stamp}", runs, seed, no_build=no_build)
        except TuneError as e:
            out.append((name, None, None, [str(e)]))
            continue
        by_wl = cells(run_dir)
        fails = [f"{a}: {c['reason']}" for cs in by_wl.values() for a, c in cs.items() if c["status"] != "ok"]
        if not fails and not os.listdir(pdir):
            fails.append("the profiled runs wrote no profile")
        shutil.rmtree(pdir, ignore_errors=True)
        out.append((name, run_dir, by_wl, fails))
    return out
