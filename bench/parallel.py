#!/usr/bin/python3
"""Run the bench matrix on several machines over ssh with GNU parallel, then merge the results.

  bench/parallel.py --hosts h1,h2,h3 [--mode shard|replicate] [--name NAME] [-- make variables]
  make bench-parallel HOSTS=h1,h2 [MODE=replicate] [SHARDS=n] [NAME=...] [WORKLOADS=...] ...

Modes:
  shard      (default) the matrix is cut into --shards shares by workload (default: one per
             host; every thread count of a sweep stays in one share); share i runs on host
             (i-1) mod hosts. One machine type is the intent: a cluster of alike nodes.
  replicate  every host runs the whole matrix: how each allocator ranks on each CPU type. The
             report gets one summary section per host, and a table of each host's ranking.
Ratios are only ever taken within one host's run: each run records the host under the name it
was given here (bench/run.py --host), and the merge keeps hosts apart.

How: the commit is packed with `git archive` (results/ left out) into build/parallel/NAME/.
For each host one `parallel -S 1/HOST` (one job at a time: a benchmark runs alone) copies the
archive (--transferfile), unpacks it on the host into a folder of its own, REMOTE_DIR/NAME/HOST/
tree-COMMIT (unpacked beside, then renamed: never a half-copied tree), runs `make bench` there
(preparation included: Debian packages, the build), and brings the run folder back with rsync
(--return) into results/NAME/, also when the job failed; --cleanup removes the copied archive
(the host keeps its unpacked tree and its run folders: a rerun builds and resumes there). A job
that fails is tried again once (--retries); the second try resumes the run where the first
stopped (`make bench-resume`), so nothing measured is lost. Then every run folder that came
back is merged into results/NAME/merged/ (bench/merge.py), and results/latest points at it.

Running the same command again (same --name) runs only what is missing: a finished run is not
sent again, an unfinished one resumes on its host, from the copy on the host or, if that is
gone, from the copy that came back. The report's "Not run" section names every cell without a
result: an unfinished run's remaining cells, and the workloads of a run that never came back.

Each host needs: an ssh login without a password prompt (BatchMode), rsync, tar, make,
python3, and root or the bench packages installed (`make bench` installs them as root).

Exit status: 0 every run finished and the merge is written; 1 some runs did not finish (the
merged report names the cells not run; run the same command again to complete them); 2 usage
error (bad option, bad host name, a --name started with other settings); 3 a missing tool
(git, parallel, rsync, ssh); 130 interrupted.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import manifest as mf  # noqa: E402
import merge as merger  # noqa: E402
import run as runner  # noqa: E402
import tabulate  # noqa: E402
from benchlib import BenchError  # noqa: E402

ROOT = benchlib.ROOT
PATH_RE = re.compile(r"[A-Za-z0-9_.+/-]+")  # a path the scripts may name unquoted
# make variables of `make bench` a host gets (bench/bench.mk); paths in them are the host's.
MAKE_VARS = ("WORKLOADS", "ALLOCATORS", "ALLOCATORS_FILE", "RUNS", "THREADS", "PIN", "QUIET", "STRICT")
# Settings that make a --name: a rerun must give the same ones, or it would mix two matrices.
# (Its commit is kept from the first run, whatever is checked out at the rerun.)
STATE_KEYS = ("mode", "hosts", "shards", "scale", "make", "bench_args")


def parse_hosts(spec, hosts_file):
    """'h1,user@h2' and/or a file of one host per line (# comments) -> [{dest, label}].
    The label names the host in records and folders: the ssh destination without user@."""
    toks = [t for t in (spec or "").replace(" ", ",").split(",") if t]
    if hosts_file:
        try:
            with open(hosts_file) as f:
                toks += [ln.split("#", 1)[0].strip() for ln in f if ln.split("#", 1)[0].strip()]
        except OSError as e:
            raise BenchError(f"--hosts-file {hosts_file}: {e.strerror}")
    if not toks:
        raise BenchError("give the hosts: --hosts h1,h2 (make bench-parallel HOSTS=h1,h2) or --hosts-file FILE")
    out, seen = [], set()
    for t in toks:
        label = t.rsplit("@", 1)[-1]
        if not benchlib.NAME_RE.fullmatch(label):
            raise BenchError(f"bad host {t!r}: expected an ssh destination [user@]host (letters, digits, _.+-)")
        if label in seen:
            raise BenchError(f"host {label!r} is given twice")
        seen.add(label)
        out.append({"dest": t, "label": label})
    return out


def parse_make_vars(tokens):
    """['RUNS=3', ...] -> {name: value}; only the variables of `make bench` a host can use."""
    out = {}
    for t in tokens or []:
        k, sep, v = t.partition("=")
        if not sep or k not in MAKE_VARS:
            raise BenchError(f"bad --make {t!r}: expected VAR=VALUE with VAR one of {', '.join(MAKE_VARS)}")
        out[k] = v
    return out


def plan_runs(state):
    """-> [{run_id, host (label), dest, shard ('i/n' or None)}] in the order they are run."""
    hosts, name = state["hosts"], state["name"]
    if state["mode"] == "replicate":
        return [{"run_id": f"{name}-{h['label']}", "host": h["label"], "dest": h["dest"], "shard": None}
                for h in hosts]
    n = state["shards"]
    return [{"run_id": f"{name}-s{i}of{n}", "host": hosts[(i - 1) % len(hosts)]["label"],
             "dest": hosts[(i - 1) % len(hosts)]["dest"], "shard": f"{i}/{n}"} for i in range(1, n + 1)]


def run_state(run_dir):
    """'done' (the run ended: env-end.json), 'partial' (it started: plan.json) or None."""
    if os.path.exists(os.path.join(run_dir, "env-end.json")):
        return "done"
    return "partial" if os.path.exists(os.path.join(run_dir, "plan.json")) else None


def remote_command(state, host_label):
    """The shell code one job runs on its host, in its working folder; {1} is the run id and
    {2} the shard (GNU parallel fills them in, quoted)."""
    c = state["commit"]
    tree = f"tree-{c[:12]}"
    q = shlex.quote
    make_vars = " ".join(q(f"{k}={v}") for k, v in sorted(state["make"].items()))
    user_args = state["bench_args"] + (["--scale", state["scale"]] if state["scale"] else [])
    new_args = f'"BENCH_ARGS=--results-dir $PWD --run-id "{{1}}" --host {q(host_label)} --no-latest "' + \
        q(shlex.join(user_args))
    shard = " SHARD={2}" if state["mode"] == "shard" else ""
    return " ".join([
        "set -e;",
        # unpack beside, then rename: a tree is whole or absent
        f"if [ ! -d {tree} ]; then rm -rf {tree}.tmp; mkdir {tree}.tmp;",
        f"tar -xzf src-{c[:12]}.tar.gz -C {tree}.tmp; mv {tree}.tmp {tree}; fi;",
        # the copy of an unfinished run that came back, for a host that lost its own
        "if [ ! -e {1} ] && [ -s partial-{1}.tar ]; then tar -xf partial-{1}.tar; fi;",
        "if [ -f {1}/plan.json ]; then",
        f"make -C {tree} bench-prereqs {make_vars};",
        f"exec make -C {tree} bench-resume RUN_ID=\"$PWD/\"{{1}} BENCH_ARGS=--no-latest; fi;",
        f"exec make -C {tree} bench{shard} {make_vars} {new_args}",
    ])


def head_commit():
    """The commit the hosts get; a BenchError outside a git checkout."""
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    if p.returncode:
        raise BenchError("not a git checkout: the hosts get a commit (git archive)", benchlib.EXIT_MISSING)
    if benchlib.git_commit().endswith("-dirty"):
        print(f"bench: the checkout has uncommitted changes; the hosts get commit {p.stdout.strip()[:12]} "
              "without them", file=sys.stderr)
    return p.stdout.strip()


def pack_commit(commit, out_dir):
    """out_dir/src-COMMIT.tar.gz: the project at `commit` without results/ (git archive),
    written beside and renamed, so a reader sees it whole or not at all."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"src-{commit[:12]}.tar.gz")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        p = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar.gz", "-o", tmp, commit, "--", ".",
                            ":(exclude)results"], stderr=subprocess.PIPE, text=True)
        if p.returncode:
            raise BenchError(f"git archive {commit}: {p.stderr.strip()}", benchlib.EXIT_FAILED)
        os.replace(tmp, path)
    return path


def check_bench_args(bench_args):
    """The options each host's run gets from here cannot come from the user too."""
    for bad in ("--results-dir", "--run-id", "--host", "--resume", "--shard"):
        if any(a == bad or a.startswith(bad + "=") for a in bench_args):
            raise BenchError(f"--bench-args {bad}: it is set for each run")
    return bench_args


def pack_partial(path, run_dir):
    """A tar of the unfinished run folder that came back (empty when none): sent with the job."""
    with tarfile.open(path, "w") as t:
        if run_state(run_dir) == "partial":
            t.add(run_dir, arcname=os.path.basename(run_dir))


def shard_workloads_named(state, shard):
    """The workloads a run that never came back was due to measure, as far as this copy of the
    manifest tells (a sweep by its name: its thread counts are the host's)."""
    try:
        argv = list(state["bench_args"])
        args = runner.parse_args(argv)
        wl = mf.select(mf.load(args.manifest, mf.parse_threads(args.threads) if args.threads else None),
                       state["make"].get("WORKLOADS") or args.workloads)
        if shard:
            wl = runner.shard_workloads(wl, *runner.parse_shard(shard))
        return list(dict.fromkeys((w.get("sweep") or {}).get("base") or w["name"] for w in wl))
    except (BenchError, SystemExit):
        return []


class Parallel:
    def __init__(self, state, out_dir, build_dir, ssh, retries, remote_dir, quiet):
        self.state, self.out_dir, self.build_dir = state, out_dir, build_dir
        self.ssh, self.retries, self.remote_dir, self.quiet = ssh, retries, remote_dir, quiet

    def command(self, host, runs):
        """The `parallel` command line of one host's jobs (one at a time)."""
        logs = os.path.join(self.out_dir, "logs")
        b = os.path.abspath(self.build_dir)
        c = self.state["commit"][:12]
        return ["parallel", "--will-cite", "--ssh", self.ssh, "-S", f"1/{host['dest']}",
                "--wd", f"{self.remote_dir}/{self.state['name']}/{host['label']}",
                "--retries", str(self.retries + 1), "--colsep", r"\t", "--joblog",
                os.path.join(logs, f"{host['label']}.joblog"), "--tagstring", host["label"], "--line-buffer",
                "--transferfile", f"{b}/./src-{c}.tar.gz", "--transferfile", f"{b}/./partial-{{1}}.tar",
                "--return", f"{os.path.abspath(self.out_dir)}/./{{1}}", "--cleanup",
                remote_command(self.state, host["label"]), "::::", "-"], \
            "".join(f"{r['run_id']}\t{r['shard'] or 'all'}\n" for r in runs)

    def run(self, todo, dry_run=False):
        if not dry_run:
            os.makedirs(os.path.join(self.out_dir, "logs"), exist_ok=True)
            pack_commit(self.state["commit"], self.build_dir)
        procs = []
        for h in self.state["hosts"]:
            runs = [r for r in todo if r["host"] == h["label"]]
            if not runs:
                continue
            argv, jobs = self.command(h, runs)
            if dry_run:
                print(f"{h['label']}: {shlex.join(argv)} <<< {jobs!r}")
                continue
            for r in runs:
                pack_partial(os.path.join(self.build_dir, f"partial-{r['run_id']}.tar"),
                             os.path.join(self.out_dir, r["run_id"]))
            log = open(os.path.join(self.out_dir, "logs", f"{h['label']}.log"), "a")
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, cwd=ROOT)
            p.stdin.write(jobs)
            p.stdin.close()
            t = threading.Thread(target=self.pump, args=(p.stdout, log), daemon=True)
            t.start()
            procs.append((h, p, t, log))
        for h, p, t, log in procs:
            p.wait()
            t.join()
            log.close()
        return {h["label"]: p.returncode for h, p, _, _ in procs}

    def pump(self, stream, log):
        for line in stream:
            log.write(line)
            log.flush()
            if not self.quiet:
                print(line, end="", flush=True)


def check_tools():
    for tool, pkg in (("git", "git"), ("parallel", "parallel"), ("rsync", "rsync"), ("ssh", "openssh-client")):
        if not shutil.which(tool):
            raise BenchError(f"{tool} is missing (Debian package {pkg}; `make bench-parallel` installs it)",
                             benchlib.EXIT_MISSING)


def load_state(path, state):
    """A --name seen before must have the same settings (its commit is kept: a rerun sends the
    commit the first runs measured, whatever is checked out now)."""
    if not os.path.exists(path):
        return state
    old = benchlib.read_json(path)
    for k in STATE_KEYS:
        if old.get(k) != state.get(k):
            raise BenchError(f"--name {state['name']} was started with {k} = {json.dumps(old.get(k))}, not "
                             f"{json.dumps(state.get(k))}; give the same settings to complete it, or a new --name")
    return dict(state, commit=old["commit"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", metavar="LIST", help="comma list of ssh destinations ([user@]host or ssh aliases)")
    ap.add_argument("--hosts-file", metavar="FILE", help="one ssh destination per line (# comments)")
    ap.add_argument("--mode", choices=("shard", "replicate"), default="shard")
    ap.add_argument("--shards", type=int, help="shares of the matrix in shard mode (default: one per host)")
    ap.add_argument("--name", metavar="NAME", help="folder results/NAME/ (default parallel-DATE-TIME); the same "
                                                   "name again completes what is missing")
    ap.add_argument("--scale", help="scale of the runs (default: make bench's, `default`)")
    ap.add_argument("--make", action="append", metavar="VAR=VALUE",
                    help=f"a variable of `make bench` for every host ({', '.join(MAKE_VARS)})")
    ap.add_argument("--bench-args", default="", metavar="ARGS", help="more bench/run.py options for every host")
    ap.add_argument("--ssh", default="ssh", metavar="CMD", help="ssh command (default ssh), e.g. 'ssh -F cfg'")
    ap.add_argument("--retries", type=int, default=1, help="tries after a job's first failure (default 1)")
    ap.add_argument("--remote-dir", default="tinymalloc-bench", metavar="DIR",
                    help="working folder on each host, relative to its home (default tinymalloc-bench)")
    ap.add_argument("--results-dir", default=os.path.join(ROOT, "results"), metavar="DIR")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--no-latest", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print each host's parallel command, run nothing")
    ap.add_argument("-q", "--quiet", action="store_true", help="no output of the hosts")
    args = ap.parse_args(argv)
    try:
        hosts = parse_hosts(args.hosts, args.hosts_file)
        if args.shards is not None and (args.mode != "shard" or args.shards < 1):
            raise BenchError("--shards is a number of shares (1 or more), in shard mode")
        if args.retries < 0:
            raise BenchError("--retries must be 0 or more")
        name = args.name or time.strftime("parallel-%Y%m%d-%H%M%S")
        if not benchlib.NAME_RE.fullmatch(name):
            raise BenchError(f"bad --name {name!r} (letters, digits, _.+- only)")
        if not PATH_RE.fullmatch(args.remote_dir):
            raise BenchError(f"bad --remote-dir {args.remote_dir!r}")
        bench_args = check_bench_args(shlex.split(args.bench_args))
        check_tools()
        state = {"name": name, "mode": args.mode, "hosts": hosts,
                 "shards": (args.shards or len(hosts)) if args.mode == "shard" else None,
                 "commit": head_commit(), "scale": args.scale, "make": parse_make_vars(args.make),
                 "bench_args": bench_args}
        out_dir = os.path.join(args.results_dir, name)
        state = load_state(os.path.join(out_dir, "parallel.json"), state)
    except BenchError as e:
        print(f"bench-parallel: {e}", file=sys.stderr)
        return e.code
    if not args.dry_run:
        os.makedirs(out_dir, exist_ok=True)
        benchlib.write_json(os.path.join(out_dir, "parallel.json"), state)
    runs = plan_runs(state)
    todo = [r for r in runs if run_state(os.path.join(out_dir, r["run_id"])) != "done"]
    par = Parallel(state, out_dir, os.path.join(ROOT, "build", "parallel", name), args.ssh, args.retries,
                   args.remote_dir, args.quiet)
    if not args.quiet or args.dry_run:
        print(f"bench-parallel {name}: commit {state['commit'][:12]}, {state['mode']} mode, "
              f"{len(runs)} run(s) on {len(state['hosts'])} host(s), {len(runs) - len(todo)} already finished")
    try:
        rcs = par.run(todo, dry_run=args.dry_run) if todo else {}
    except KeyboardInterrupt:
        print("bench-parallel: interrupted; run the same command again to complete the runs", file=sys.stderr)
        return benchlib.EXIT_INTERRUPTED
    except BenchError as e:
        print(f"bench-parallel: {e}", file=sys.stderr)
        return e.code
    if args.dry_run:
        return 0
    return finish(state, runs, rcs, out_dir, args)


def finish(state, runs, rcs, out_dir, args):
    """Merge what came back; name what did not."""
    came, not_run = [], []
    for r in runs:
        d = os.path.join(out_dir, r["run_id"])
        st = run_state(d)
        if st:
            came.append(d)
        if st != "done":
            rc = rcs.get(r["host"])
            why = ("no results came back" if not st else "it did not finish") + \
                (f" (its parallel job on {r['host']} exited {rc}; log: "
                 f"{os.path.relpath(os.path.join(out_dir, 'logs', r['host'] + '.log'), os.getcwd())})"
                 if rc else "")
            if not st:
                not_run.append({"what": f"run {r['run_id']}" + (f" (shard {r['shard']})" if r["shard"] else "") +
                                        f" on {r['host']}", "why": why,
                                "workloads": shard_workloads_named(state, r["shard"])})
            else:
                print(f"bench-parallel: run {r['run_id']} on {r['host']}: {why}", file=sys.stderr)
    if not came:
        for m in not_run:
            print(f"bench-parallel: {m['what']}: {m['why']}", file=sys.stderr)
        print("bench-parallel: nothing came back; nothing to merge", file=sys.stderr)
        return benchlib.EXIT_FAILED
    merged = os.path.join(out_dir, "merged")
    shutil.rmtree(merged, ignore_errors=True)
    hosts = ", ".join(h["label"] for h in state["hosts"])
    try:
        s = merger.merge(came, merged, plots=not args.no_plots, not_run=not_run,
                         title=f"Bench runs of {state['name']} ({state['mode']} mode over {hosts}, "
                               f"commit {state['commit'][:12]})")
    except BenchError as e:
        print(f"bench-parallel: merge: {e}", file=sys.stderr)
        return e.code
    if not args.no_latest:
        runner.update_latest(args.results_dir, os.path.join(state["name"], "merged"))
    for line in tabulate.summary_lines(s):
        print(line)
    print(f"wrote {os.path.relpath(os.path.join(merged, 'report.md'), os.getcwd())}")
    missing = len(not_run) + sum(c["status"] == "incomplete" for c in s["cells"])
    if missing:
        print(f"bench-parallel: {missing} run(s) or cell(s) not run (named in the report); run the same "
              f"command again to complete them", file=sys.stderr)
        return benchlib.EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
