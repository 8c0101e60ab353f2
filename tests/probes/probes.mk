# Heap-error probes (issue 8), included by the root Makefile.
#   make bench-probes     the probe set under the bench's default allocators, run by the bench
#                         runner: results/probes/<date>-<commit>.md (scripts/probe_table.py)
#   PROBE_ALLOCATORS=glibc,tinymalloc,...   another selection (names as in bench/allocators.py)
#   ALLOCATORS_FILE=f     variants (name = built-in VAR=VALUE), as for make bench
# The probe program links only libc: the allocator under test is whatever LD_PRELOAD puts in.
PROBES_BIN := $(BUILD)/probes/heap-probes
PROBE_ALLOCATORS ?=

$(PROBES_BIN): tests/probes/heap_probes.c tests/probes/probes.mk
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -pthread $< -o $@ -ldl

test-prereqs:: $(PROBES_BIN)

bench-probes: $(PROBES_BIN) lib
	$(or $(PYTHON),/usr/bin/python3) scripts/probe_table.py \
	    $(if $(PROBE_ALLOCATORS),--allocators '$(PROBE_ALLOCATORS)') \
	    $(if $(ALLOCATORS_FILE),--allocators-file '$(ALLOCATORS_FILE)')

.PHONY: bench-probes
