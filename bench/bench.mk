# Bench harness: `make bench`, `make bench-quick` (see bench/run.py --help).
#   WORKLOADS=a,b  ALLOCATORS=glibc,jemalloc,name=/path/lib.so  RUNS=N  ALLOCATORS_FILE=f
#   SHARD=i/n  BENCH_ARGS="--no-strace ..."   make bench-resume RUN_ID=...
#   make bench-merge MERGE="results/A results/B"
#   make bench-compare RUN_A=results/A RUN_B=results/B     (does every ranking of A hold in B?)
#   STRICT=1 (a FAIL cell exits 1)  PIN=0 (single-threaded workloads not pinned; default 1: on one CPU)
#   THREADS=1,2,8 (thread counts of the sweeping workloads; default 1, CPUs, 4x CPUs)
#   QUIET=SECONDS (wait for a quiet machine first; refuse to start when it stays busy)

BENCH_PROBE := $(BUILD)/bench/tm-probe.so
BENCH_ARGS ?=
# Pinned by default: a VM's CPUs need not run at one speed, and an unpinned run lands on either
# (bench/README.md, --pin).
PIN ?= 1
comma := ,
bench_opts = $(if $(WORKLOADS),--workloads '$(WORKLOADS)') \
             $(if $(ALLOCATORS),--allocators '$(ALLOCATORS)') \
             $(if $(ALLOCATORS_FILE),--allocators-file '$(ALLOCATORS_FILE)') \
             $(if $(RUNS),--runs $(RUNS)) $(if $(SHARD),--shard $(SHARD)) \
             $(if $(filter-out 0,$(STRICT)),--strict) $(if $(filter-out 0,$(PIN)),--pin) \
             $(if $(QUIET),--quiet-machine $(QUIET)) $(if $(THREADS),--threads '$(THREADS)')
# tinymalloc is built when it is in the matrix: no ALLOCATORS (the default matrix) or named in it.
bench_wants_tm = $(if $(strip $(ALLOCATORS)),$(filter tinymalloc,$(subst $(comma), ,$(ALLOCATORS))),yes)

$(BENCH_PROBE): bench/probe.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -fPIC -shared -Wall -Wextra -Werror -o $@ $< -ldl

bench-setup:
	$(PYTHON) scripts/setup.py

bench-prereqs: bench-setup
	$(MAKE) $(BENCH_PROBE)
	@if [ -n "$(bench_wants_tm)" ]; then \
	    $(MAKE) lib || { echo "make bench: building tinymalloc failed; bench the others with" \
	        "ALLOCATORS=glibc,jemalloc,mimalloc,tcmalloc" >&2; exit 3; }; fi
	@if $(MAKE) -n workloads >/dev/null 2>&1; then \
	    $(MAKE) workloads || echo "make bench: warning: \`make workloads\` failed;" \
	        "the workloads it builds will show as FAIL" >&2; fi

bench: bench-prereqs
	$(PYTHON) bench/run.py --scale default $(bench_opts) $(BENCH_ARGS)

bench-quick: bench-prereqs
	$(PYTHON) bench/run.py --scale quick $(bench_opts) $(BENCH_ARGS)

bench-resume: bench-setup
	@[ -n "$(RUN_ID)" ] || { echo "make bench-resume: give RUN_ID=<folder name in results/>" >&2; exit 2; }
	$(PYTHON) bench/run.py --resume $(RUN_ID) $(BENCH_ARGS)

bench-merge:
	@[ -n "$(MERGE)" ] || { echo "make bench-merge: give MERGE=\"results/RUN1 results/RUN2 ...\"" >&2; exit 2; }
	$(PYTHON) scripts/merge.py $(MERGE) $(BENCH_ARGS)

bench-compare:
	@[ -n "$(RUN_A)" ] && [ -n "$(RUN_B)" ] || { echo "make bench-compare: give RUN_A=results/X RUN_B=results/Y" >&2; exit 2; }
	$(PYTHON) scripts/compare.py $(RUN_A) $(RUN_B) $(BENCH_ARGS)

test-prereqs:: $(BENCH_PROBE)

.PHONY: bench bench-quick bench-setup bench-prereqs bench-resume bench-merge bench-compare

# Several machines over ssh (bench/parallel.py --help): GNU parallel copies the commit, runs
# `make bench` on each host (a share of the matrix each, or all of it with MODE=replicate),
# brings the run folders back into results/NAME/ and merges them. The same NAME again
# completes what is missing.
#   make bench-parallel HOSTS=h1,h2 [HOSTS_FILE=f] [MODE=replicate] [SHARDS=n] [NAME=...]
#        [SCALE=quick] [SSH='ssh -F cfg'] [RETRIES=1] [REMOTE_DIR=tinymalloc-bench]
#        and the variables of `make bench` above (WORKLOADS, ALLOCATORS, RUNS, THREADS, ...)
parallel_opts = $(if $(HOSTS),--hosts '$(HOSTS)') $(if $(HOSTS_FILE),--hosts-file '$(HOSTS_FILE)') \
    $(if $(MODE),--mode '$(MODE)') $(if $(SHARDS),--shards '$(SHARDS)') $(if $(NAME),--name '$(NAME)') \
    $(if $(SCALE),--scale '$(SCALE)') $(if $(SSH),--ssh '$(SSH)') $(if $(RETRIES),--retries '$(RETRIES)') \
    $(if $(REMOTE_DIR),--remote-dir '$(REMOTE_DIR)') $(if $(BENCH_ARGS),--bench-args '$(BENCH_ARGS)') \
    $(foreach v,WORKLOADS ALLOCATORS ALLOCATORS_FILE RUNS THREADS PIN QUIET STRICT,$(if $($(v)),--make '$(v)=$($(v))'))

bench-parallel:
	$(PYTHON) scripts/setup.py --parallel
	$(PYTHON) bench/parallel.py $(parallel_opts)

.PHONY: bench-parallel

# Slurm (bench/slurm.py --help): writes results/NAME/slurm/{bench.sbatch,merge.sbatch,submit.sh},
# an `sbatch --array=1-n --exclusive` job of one shard per task and its merge (afterok).
#   make bench-slurm SHARDS=n [NAME=...] [SCALE=quick] [SBATCH='--partition=x --time=4:00:00']
#        [SUBMIT=1] and the variables of `make bench` above
slurm_opts = --shards '$(SHARDS)' $(if $(NAME),--name '$(NAME)') $(if $(SCALE),--scale '$(SCALE)') \
    $(foreach o,$(SBATCH),--sbatch='$(o)') $(if $(BENCH_ARGS),--bench-args '$(BENCH_ARGS)') \
    $(if $(filter-out 0,$(SUBMIT)),--submit) \
    $(foreach v,WORKLOADS ALLOCATORS ALLOCATORS_FILE RUNS THREADS PIN QUIET STRICT,$(if $($(v)),--make '$(v)=$($(v))'))

bench-slurm:
	@[ -n "$(SHARDS)" ] || { echo "make bench-slurm: give SHARDS=n (array tasks, one shard each)" >&2; exit 2; }
	$(PYTHON) bench/slurm.py $(slurm_opts)

.PHONY: bench-slurm
