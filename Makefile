# tinymalloc: top-level build. `make` builds the allocator, `make test` runs every test,
# `make bench` runs the benchmark matrix (see bench/bench.mk).

CC       ?= cc
PREFIX   ?= /usr/local
BUILD    := build
PYTHON   ?= /usr/bin/python3

VERSION_MAJOR := 0
VERSION       := 0.1.0

# -fno-builtin keeps the compiler from turning malloc+memset into calloc (and the like)
# inside the allocator itself, which would recurse.
TM_CFLAGS := -std=gnu11 -O2 -g -fPIC -Wall -Wextra -Werror -fvisibility=hidden \
             -ftls-model=initial-exec -fno-builtin -fno-stack-protector \
             -fno-semantic-interposition -D_GNU_SOURCE -Itinymalloc/include $(EXTRA_CFLAGS)
# nodelete: the purger thread (purger.c) runs this library's code, so it is never unloaded
TM_LDFLAGS := -shared -Wl,-soname,libtinymalloc.so.$(VERSION_MAJOR) -Wl,-z,now -Wl,-z,relro -Wl,-z,nodelete -pthread

TM_SRCS := $(wildcard tinymalloc/src/*.c)
TM_HDRS := $(wildcard tinymalloc/src/*.h) tinymalloc/include/tinymalloc.h

# Variants: the release build, and two for the tests: one under UndefinedBehaviorSanitizer,
# and one under ThreadSanitizer. TSan's runtime must keep its own malloc, so the tsan library
# is a TM_PREFIX build exporting tinymalloc_malloc and the rest (tinymalloc-prefix.map), and
# its tests are compiled with tests/tm_prefix.h, which renames their calls. The ubsan build
# takes the generic code where the others dispatch on the CPU's features (TM_NO_CPU_DISPATCH),
# so that the suite runs both.
VARIANTS := release ubsan tsan
release_FLAGS :=
ubsan_FLAGS   := -fsanitize=undefined -fno-sanitize-recover=all -fno-sanitize=alignment \
                 -DTM_NO_CPU_DISPATCH
tsan_FLAGS    := -fsanitize=thread -DTM_PREFIX
MAP           := tinymalloc/tinymalloc.map
tsan_MAP      := tinymalloc/tinymalloc-prefix.map
tsan_TEST_FLAGS := -include tests/tm_prefix.h

LIB_SO  = $(BUILD)/$(1)/libtinymalloc.so
all: lib

lib: $(call LIB_SO,release) $(BUILD)/release/libtinymalloc.a

define variant_rules
$(BUILD)/$(1)/obj/%.o: tinymalloc/src/%.c $(TM_HDRS) Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $$(TM_CFLAGS) $$($(1)_FLAGS) -c $$< -o $$@

$(BUILD)/$(1)/libtinymalloc.so.$(VERSION): $(patsubst tinymalloc/src/%.c,$(BUILD)/$(1)/obj/%.o,$(TM_SRCS)) $(or $($(1)_MAP),$(MAP))
	$$(CC) $$(TM_LDFLAGS) -Wl,--version-script=$(or $($(1)_MAP),$(MAP)) $$($(1)_FLAGS) -o $$@ $$(filter %.o,$$^)

$(BUILD)/$(1)/libtinymalloc.so: $(BUILD)/$(1)/libtinymalloc.so.$(VERSION)
	ln -sf libtinymalloc.so.$(VERSION) $(BUILD)/$(1)/libtinymalloc.so.$(VERSION_MAJOR)
	ln -sf libtinymalloc.so.$(VERSION) $$@

$(BUILD)/$(1)/libtinymalloc.a: $(patsubst tinymalloc/src/%.c,$(BUILD)/$(1)/obj/%.o,$(TM_SRCS))
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

# Convenience path used by scripts, tests and the bench: build/libtinymalloc.so -> release.
$(BUILD)/libtinymalloc.so: $(call LIB_SO,release)
	ln -sf release/libtinymalloc.so $@
lib: $(BUILD)/libtinymalloc.so

# ---- tests ------------------------------------------------------------------------------
# C tests (tests/<area>/test_*.c) are linked against the library of each variant; the runner
# (tests/run.py) also runs tests/**/test_*.sh and tests/**/test_*.py.
TEST_CSRCS := $(wildcard tests/*/test_*.c)
TEST_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Wno-alloc-size-larger-than -D_GNU_SOURCE -Itinymalloc/include -Itests -pthread

define test_rules
$(BUILD)/$(1)/tests/%: tests/%.c tests/tm_test.h tests/tm_prefix.h $(call LIB_SO,$(1))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(TEST_CFLAGS) $$($(1)_FLAGS) $$($(1)_TEST_FLAGS) $$< -o $$@ -L$(BUILD)/$(1) -ltinymalloc \
	    -Wl,-rpath,$$(abspath $(BUILD)/$(1)) -ldl
endef
$(foreach v,$(VARIANTS),$(eval $(call test_rules,$(v))))

TEST_BINS := $(foreach v,$(VARIANTS),$(patsubst tests/%.c,$(BUILD)/$(v)/tests/%,$(TEST_CSRCS)))

test-build: lib $(call LIB_SO,ubsan) $(call LIB_SO,tsan) $(TEST_BINS)

test: test-build test-prereqs
	$(PYTHON) tests/run.py

# Targets of the other parts hook in here (workloads build, bench probe, ...).
test-prereqs::

.PHONY: all lib test test-build test-prereqs install clean format conf-table

# ---- install ----------------------------------------------------------------------------
install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/release/libtinymalloc.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libtinymalloc.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtinymalloc.so.$(VERSION_MAJOR)
	ln -sf libtinymalloc.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libtinymalloc.so
	install -m 644 $(BUILD)/release/libtinymalloc.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 tinymalloc/include/tinymalloc.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tinymalloc/tinymalloc.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tinymalloc.pc

# Every C file git tracks; tests/style/test_format.sh checks it.
format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

# The README's table of TINYMALLOC_CONF keys is the library's own TINYMALLOC_CONF=help.
conf-table: lib
	$(PYTHON) scripts/conf_table.py --update

clean:
	rm -rf $(BUILD)

# The bench harness and the workloads own their make fragments.
-include workloads/workloads.mk
-include bench/bench.mk
-include bench/micro/micro.mk
-include workloads/real/real.mk
-include scripts/tuning.mk
-include tests/probes/probes.mk
-include tests/outside/outside.mk
-include tests/fuzz/fuzz.mk
