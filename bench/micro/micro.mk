# Allocator micro-benchmark (issue 2): malloc/free pair times under tinymalloc and its peers.
#   make micro         build build/bench/micro/pairs
#   make bench-micro   run scripts/micro_bench.py through the bench runner; table ->
#                      results/micro/<date>-<commit>.md, the runner's run folder (every run's
#                      record and output, micro.json) -> results/micro/<date>-<commit>/
#   MICRO_ALLOCATORS=glibc,jemalloc,...  pick allocators from the bench's registry (default: its
#                                        default matrix; tinymalloc needs `make lib`)
#   MICRO_ARGS=...                       extra arguments for the script (e.g. --reps 11, or
#                                        --tinymalloc PATH to measure another build of the library)

MICRO_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE \
                -fno-builtin-malloc -fno-builtin-free $(EXTRA_CFLAGS)
MICRO_BIN := $(BUILD)/bench/micro/pairs
# The library floor (floor_lib.c): a shared library pairs links, next to it.
MICRO_FLOOR_LIB := $(BUILD)/bench/micro/libmicrofloor.so
MICRO_ALLOCATORS ?=
MICRO_ARGS ?=

micro: $(MICRO_BIN)

$(MICRO_FLOOR_LIB): bench/micro/floor_lib.c bench/micro/micro.mk
	@mkdir -p $(dir $@)
	$(CC) $(MICRO_CFLAGS) -fPIC -shared $< -o $@

$(MICRO_BIN): bench/micro/pairs.c $(MICRO_FLOOR_LIB) bench/micro/micro.mk
	@mkdir -p $(dir $@)
	$(CC) $(MICRO_CFLAGS) $< -o $@ -L$(dir $(MICRO_FLOOR_LIB)) -lmicrofloor \
	    -Wl,-rpath,'$$ORIGIN' -ldl -pthread

# `make lib` only when the run uses build/libtinymalloc.so (not MICRO_ARGS=--tinymalloc PATH).
micro_wants_lib = $(if $(MICRO_ALLOCATORS),$(findstring tinymalloc,$(MICRO_ALLOCATORS)),yes)
bench-micro: micro $(BENCH_PROBE) $(if $(micro_wants_lib),$(if $(findstring --tinymalloc,$(MICRO_ARGS)),,lib))
	$(PYTHON) scripts/micro_bench.py $(if $(MICRO_ALLOCATORS),--allocators $(MICRO_ALLOCATORS)) $(MICRO_ARGS)

# tests/micro/test_micro.sh runs the binary.
test-prereqs:: micro

.PHONY: micro bench-micro
