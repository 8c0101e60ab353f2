# Synthetic workloads: one program per workloads/synthetic/<name>.c (underscores become
# dashes: churn_small.c -> build/workloads/churn-small), all linked with the common wl.c.
# They call the plain malloc API, so any allocator can serve them through LD_PRELOAD.

WL_DIR   := workloads/synthetic
WL_OUT   := $(BUILD)/workloads
WL_SRCS  := $(filter-out $(WL_DIR)/wl.c,$(wildcard $(WL_DIR)/*.c))
WL_NAMES := $(subst _,-,$(basename $(notdir $(WL_SRCS))))
WL_BINS  := $(addprefix $(WL_OUT)/,$(WL_NAMES))

# -fno-builtin-<fn>: the compiler must not drop a malloc/free pair or fuse malloc+memset
# into calloc; the calls are what we measure.
WL_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread -D_GNU_SOURCE \
             -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
             -fno-builtin-posix_memalign -fno-builtin-aligned_alloc $(WL_EXTRA_CFLAGS)
WL_LIBS   := -pthread -ldl -lm

$(WL_OUT)/obj/wl.o: $(WL_DIR)/wl.c $(WL_DIR)/wl.h workloads/workloads.mk
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) -c $< -o $@

# Double-colon so other fragments may add their own programs to `make workloads`.
workloads:: $(WL_BINS)

# One rule per program (not .SECONDEXPANSION, which would leak into the fragments included
# after this one).
define wl_program
$(WL_OUT)/$(1): $(WL_DIR)/$(subst -,_,$(1)).c $(WL_OUT)/obj/wl.o $(WL_DIR)/wl.h
	@mkdir -p $$(dir $$@)
	$$(CC) $$(WL_CFLAGS) $$< $(WL_OUT)/obj/wl.o -o $$@ $$(WL_LIBS)
endef
$(foreach w,$(WL_NAMES),$(eval $(call wl_program,$(w))))

# The same programs under ThreadSanitizer, calling the prefixed tsan library directly (see the
# tsan variant in the Makefile); tests/workloads/check_tsan.py runs the threaded ones.
WL_TSAN_OUT  := $(BUILD)/tsan/workloads
WL_TSAN_BINS := $(addprefix $(WL_TSAN_OUT)/,$(WL_NAMES))
WL_TSAN_FLAGS := -fsanitize=thread -include tests/tm_prefix.h

$(WL_TSAN_OUT)/obj/wl.o: $(WL_DIR)/wl.c $(WL_DIR)/wl.h workloads/workloads.mk tests/tm_prefix.h
	@mkdir -p $(dir $@)
	$(CC) $(WL_CFLAGS) $(WL_TSAN_FLAGS) -c $< -o $@

define wl_tsan_program
$(WL_TSAN_OUT)/$(1): $(WL_DIR)/$(subst -,_,$(1)).c $(WL_TSAN_OUT)/obj/wl.o $(WL_DIR)/wl.h $(call LIB_SO,tsan)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(WL_CFLAGS) $$(WL_TSAN_FLAGS) $$< $(WL_TSAN_OUT)/obj/wl.o -o $$@ \
	    -L$(BUILD)/tsan -ltinymalloc -Wl,-rpath,$$(abspath $(BUILD)/tsan) $$(WL_LIBS)
endef
$(foreach w,$(WL_NAMES),$(eval $(call wl_tsan_program,$(w))))

workloads-tsan: $(WL_TSAN_BINS)

test-prereqs:: workloads workloads-tsan

.PHONY: workloads workloads-tsan
