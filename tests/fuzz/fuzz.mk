# The libFuzzer target of the allocator (issue 8), included by the root Makefile.
#   make fuzz                    fuzz for FUZZ_SECONDS (default 600) with the committed corpus
#   make fuzz-build              build/fuzz/fuzz_malloc only
#   FUZZ_TM=release              link build/release/libtinymalloc.a instead of the instrumented copy
#   make fuzz-config             CONFIGS (default 200) configurations drawn from the option table
#                                (seed CONF_SEED, default 1), FUZZ_CONFIG_SECONDS (default 5) of
#                                fuzzing and six workloads under each (tests/fuzz/conf_space.py)
# `make test` runs tests/fuzz/test_fuzz.sh for 60 s, and test_conf_space.sh (24 configurations).
#
# The target links the allocator statically, so the whole process (libFuzzer included) uses
# tinymalloc. By default the allocator's sources are compiled again with clang and
# -fsanitize=fuzzer-no-link (same TM_CFLAGS as the library), so libFuzzer is guided by the
# allocator's own branches, not only by the harness's; FUZZ_TM=release links the release
# archive (gcc-built, no coverage: the fuzzer is then blind to the allocator's paths).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_TM      ?= instrumented
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_BIN     := $(FUZZ_DIR)/fuzz_malloc
FUZZ_OBJS    := $(patsubst tinymalloc/src/%.c,$(FUZZ_DIR)/obj/%.o,$(TM_SRCS))
FUZZ_TM_LIB  := $(if $(filter release,$(FUZZ_TM)),$(BUILD)/release/libtinymalloc.a,$(FUZZ_OBJS))

$(FUZZ_DIR)/obj/%.o: tinymalloc/src/%.c $(TM_HDRS) Makefile tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(TM_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BIN): tests/fuzz/fuzz_malloc.c $(FUZZ_TM_LIB) tests/fuzz/fuzz.mk
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -O1 -g -Wall -Wextra -Werror -fno-builtin -fsanitize=fuzzer $< \
	    $(FUZZ_TM_LIB) -pthread -ldl -o $@

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/test_fuzz.sh

# For `make test`: a failed build must not stop the other tests; tests/fuzz/test_fuzz.sh reports
# it as a FAIL (from build-failed.log), and SKIPs when there is no clang.
test-prereqs:: lib
	@rm -f $(FUZZ_DIR)/build-failed.log
	@if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
	    mkdir -p $(FUZZ_DIR); \
	    $(MAKE) --no-print-directory fuzz-build >$(FUZZ_DIR)/build.log 2>&1 || \
	    { rm -f $(FUZZ_BIN); mv $(FUZZ_DIR)/build.log $(FUZZ_DIR)/build-failed.log; \
	      echo "fuzz target: build failed (tests/fuzz will FAIL): see $(FUZZ_DIR)/build-failed.log" >&2; }; \
	fi

CONFIGS ?= 200
CONF_SEED ?= 1
FUZZ_CONFIG_SECONDS ?= 5
fuzz-config: $(FUZZ_BIN) lib workloads
	$(PYTHON) tests/fuzz/conf_space.py --configs $(CONFIGS) --seed $(CONF_SEED) \
	    --fuzz-seconds $(FUZZ_CONFIG_SECONDS)

.PHONY: fuzz fuzz-build fuzz-config
