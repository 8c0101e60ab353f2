#!/usr/bin/python3
"""Write the Slurm batch scripts that run the bench matrix as an array job, one shard per task.

  bench/slurm.py --shards N [--name NAME] [--sbatch OPTION]... [--submit]
  make bench-slurm SHARDS=n [NAME=...] [SBATCH='--partition=x --time=4:00:00'] [SUBMIT=1]

It packs the commit (`git archive`, results/ left out) into build/slurm/NAME/ and writes
results/NAME/slurm/:
  bench.sbatch  `sbatch --array=1-N --exclusive`: task i unpacks the commit into a folder on
                its node's local disk, runs `make bench SHARD=i/N` there (preparation included)
                and writes its run into results/NAME/NAME-siofN/. `--exclusive` gives each task
                a whole node: a benchmark that shares a node measures its neighbours. A task
                run again (sbatch again, or a requeue) resumes its unfinished run when it lands
                on the node that started it, and sets the run aside (NAME-siofN.set-aside-JOB)
                and starts over when not: a run's ratios come from one machine.
  merge.sbatch  merges the shards into results/NAME/merged/ (bench/merge.py).
  submit.sh     submits bench.sbatch, then merge.sbatch with --dependency=afterok on it.
The checkout must be on storage every node sees (a shared home usually is): the tasks read
the archive from it and write the runs into it. Each node needs make, gcc, python3, and the
bench packages (`make bench` installs them where it runs as root).

Exit status: 0 written (and submitted, with --submit); 1 sbatch refused the job; 2 usage
error; 3 a missing tool (git; sbatch with --submit).
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
import parallel  # noqa: E402
from benchlib import BenchError  # noqa: E402

ROOT = benchlib.ROOT


def bench_script(name, shards, archive, out, make_vars, bench_args, sbatch):
    q = shlex.quote
    tree_make = " ".join(q(f"{k}={v}") for k, v in sorted(make_vars.items()))
    opts = "".join(f"#SBATCH {o}\n" for o in sbatch)
    return f"""#!/bin/bash
# Bench matrix {name}: shard $SLURM_ARRAY_TASK_ID of {shards} per task (written by bench/slurm.py).
#SBATCH --job-name=tm-bench-{name}
#SBATCH --array=1-{shards}
#SBATCH --exclusive
#SBATCH --nodes=1
#SBATCH --output={out}/logs/shard-%a.log
{opts}set -euo pipefail
i=$SLURM_ARRAY_TASK_ID
run_id={name}-s${{i}}of{shards}
run={out}/$run_id
# the commit unpacked on the node's own disk: builds of two tasks never share a folder (no
# `exec` below, so that the trap removes it)
work=$(mktemp -d "${{TMPDIR:-/tmp}}/tm-bench-{name}-$i.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf {q(archive)} -C "$work"
started=""
if [ -f "$run/env.json" ]; then
    started=$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1])); print(e.get("hostname") or e.get("host"))' "$run/env.json")
fi
if [ -f "$run/env-end.json" ]; then
    echo "run $run_id is finished already"
    exit 0
elif [ -n "$started" ] && [ "$started" = "$(hostname)" ]; then
    make -C "$work" bench-prereqs {tree_make}
    make -C "$work" bench-resume RUN_ID="$run" BENCH_ARGS=--no-latest
    exit 0
elif [ -e "$run" ]; then
    echo "run $run_id started on ${{started:-an unknown host}}, not here: set aside, starting over"
    mv "$run" "$run.set-aside-$SLURM_JOB_ID"
fi
make -C "$work" bench SHARD=$i/{shards} {tree_make} \\
    "BENCH_ARGS=--results-dir {out} --run-id $run_id --no-latest "{q(shlex.join(bench_args))}
"""


def merge_script(name, shards, archive, out):
    q = shlex.quote
    return f"""#!/bin/bash
# Merge of the bench matrix {name} (written by bench/slurm.py); submit.sh makes it wait for
# every task of bench.sbatch (afterok).
#SBATCH --job-name=tm-bench-{name}-merge
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --output={out}/logs/merge.log
set -euo pipefail
work=$(mktemp -d "${{TMPDIR:-/tmp}}/tm-bench-{name}-merge.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf {q(archive)} -C "$work"
rm -rf {out}/merged
runs=()
for i in $(seq 1 {shards}); do runs+=("{out}/{name}-s${{i}}of{shards}"); done
python3 "$work/bench/merge.py" "${{runs[@]}}" --out {out}/merged --no-latest
"""


def submit_script(out):
    return f"""#!/bin/bash
# Submit the bench array job, then its merge once every task ended well (written by bench/slurm.py).
set -euo pipefail
jid=$(sbatch --parsable {out}/slurm/bench.sbatch)
jid=${{jid%%;*}}
mid=$(sbatch --parsable --dependency=afterok:$jid {out}/slurm/merge.sbatch)
echo "bench array job $jid, merge job ${{mid%%;*}}: results in {out}/"
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, required=True, help="array tasks: shares of the matrix, by workload")
    ap.add_argument("--name", metavar="NAME", help="folder results/NAME/ (default slurm-DATE-TIME)")
    ap.add_argument("--scale", help="scale of the runs (default: make bench's, `default`)")
    ap.add_argument("--make", action="append", metavar="VAR=VALUE",
                    help=f"a variable of `make bench` for every task ({', '.join(parallel.MAKE_VARS)})")
    ap.add_argument("--bench-args", default="", metavar="ARGS", help="more bench/run.py options for every task")
    ap.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                    help="an #SBATCH option of the array job, e.g. --partition=x or --time=4:00:00")
    ap.add_argument("--results-dir", default=os.path.join(ROOT, "results"), metavar="DIR",
                    help="where the runs go; on storage every node sees")
    ap.add_argument("--submit", action="store_true", help="submit the jobs (submit.sh) after writing them")
    args = ap.parse_args(argv)
    try:
        if args.shards < 1:
            raise BenchError("--shards must be 1 or more")
        name = args.name or time.strftime("slurm-%Y%m%d-%H%M%S")
        if not benchlib.NAME_RE.fullmatch(name):
            raise BenchError(f"bad --name {name!r} (letters, digits, _.+- only)")
        for o in args.sbatch:
            if not re.fullmatch(r"--?[A-Za-z][A-Za-z-]*(=\S+)?", o):
                raise BenchError(f"bad --sbatch {o!r}: expected one option such as --partition=x")
            if o.split("=")[0] in ("--array", "-a", "--output", "-o", "--exclusive", "--dependency", "-d"):
                raise BenchError(f"--sbatch {o}: the script sets it")
        make_vars = parallel.parse_make_vars(args.make)
        bench_args = parallel.check_bench_args(shlex.split(args.bench_args)) + \
            (["--scale", args.scale] if args.scale else [])
        if not shutil.which("git"):
            raise BenchError("git is missing (Debian package git)", benchlib.EXIT_MISSING)
        if args.submit and not shutil.which("sbatch"):
            raise BenchError("sbatch is not on PATH: run this on a Slurm login node, or without --submit",
                             benchlib.EXIT_MISSING)
        commit = parallel.head_commit()
        archive = parallel.pack_commit(commit, os.path.join(ROOT, "build", "slurm", name))
    except BenchError as e:
        print(f"bench-slurm: {e}", file=sys.stderr)
        return e.code
    out = os.path.abspath(os.path.join(args.results_dir, name))
    if not parallel.PATH_RE.fullmatch(out + os.path.abspath(archive)):
        print(f"bench-slurm: {out}: the scripts name this path unquoted; use a path of letters, digits and "
              "_.+-/ only", file=sys.stderr)
        return benchlib.EXIT_USAGE
    sdir = os.path.join(out, "slurm")
    os.makedirs(sdir, exist_ok=True)
    os.makedirs(os.path.join(out, "logs"), exist_ok=True)
    for fname, text in (("bench.sbatch", bench_script(name, args.shards, os.path.abspath(archive), out, make_vars,
                                                      bench_args, args.sbatch)),
                        ("merge.sbatch", merge_script(name, args.shards, os.path.abspath(archive), out)),
                        ("submit.sh", submit_script(out))):
        with open(os.path.join(sdir, fname), "w") as f:
            f.write(text)
        os.chmod(os.path.join(sdir, fname), 0o755)
    print(f"bench-slurm {name}: commit {commit[:12]}, {args.shards} array task(s); wrote {sdir}/"
          "{bench.sbatch,merge.sbatch,submit.sh}")
    if not args.submit:
        print(f"submit with: bash {os.path.join(sdir, 'submit.sh')}")
        return 0
    p = subprocess.run(["bash", os.path.join(sdir, "submit.sh")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    sys.stdout.write(p.stdout)
    if p.returncode:
        print(f"bench-slurm: sbatch refused the job: {p.stderr.strip()}", file=sys.stderr)
        return benchlib.EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
