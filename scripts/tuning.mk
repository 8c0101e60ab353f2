# Slab tuning (issue 7, issue 18), included by the root Makefile.
#   make tune WORKLOAD=name [TUNE_SCALE=quick] [TUNE_RUNS=5] [TUNE_ARGS="--objective rss ..."]
#   make tune TUNE_WORKLOADS=a,b,group:NAME ...   one configuration for a mix
# profiles the workload(s) under tinymalloc, prints the model's TINYMALLOC_CONF, measures it and
# its neighbours against the default in one bench run and writes results/tuning/<name>.md: a
# measured winner or "keep the defaults" (see scripts/tune-slabs --help).
TUNE_SCALE ?= quick
TUNE_RUNS  ?= 5
TUNE_ARGS  ?=
TUNE_WORKLOADS ?=

tune: lib
	@test -n "$(WORKLOAD)$(TUNE_WORKLOADS)" || { echo "usage: make tune WORKLOAD=name | TUNE_WORKLOADS=a,b [TUNE_SCALE=quick] [TUNE_RUNS=5] [TUNE_ARGS=...]" >&2; exit 2; }
	$(PYTHON) scripts/tune-slabs $(if $(WORKLOAD),--workload $(WORKLOAD),--workloads '$(TUNE_WORKLOADS)') \
	    --scale $(TUNE_SCALE) --runs $(TUNE_RUNS) --verify $(TUNE_ARGS)

.PHONY: tune
