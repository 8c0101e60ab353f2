# Slab tuning (issue 7), included by the root Makefile.
#   make tune WORKLOAD=name [TUNE_SCALE=quick] [TUNE_RUNS=5] [TUNE_ARGS="--weight count ..."]
# profiles the registered workload under tinymalloc, prints the recommended TINYMALLOC_CONF,
# measures default vs tuned and writes results/tuning/<name>.md (see scripts/tune-slabs --help).
TUNE_SCALE ?= quick
TUNE_RUNS  ?= 5
TUNE_ARGS  ?=

tune: lib
	@test -n "$(WORKLOAD)" || { echo "usage: make tune WORKLOAD=name [TUNE_SCALE=quick] [TUNE_RUNS=5] [TUNE_ARGS=...]" >&2; exit 2; }
	$(PYTHON) scripts/tune-slabs --workload $(WORKLOAD) --scale $(TUNE_SCALE) --runs $(TUNE_RUNS) --verify $(TUNE_ARGS)

.PHONY: tune
