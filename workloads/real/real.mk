# Real workloads (issue 6), included by the root Makefile.
#   make prepare-real                          everything (neovim and redis builds included)
#   make prepare-real PREPARE_REAL="lua sqlite"   only these (names: workloads/real/prepare.py --list)
# Fetched, built and generated files go to cache/real/ (ignored by git); see workloads/real/README.md.
PREPARE_REAL ?= --all

prepare-real:
	$(or $(PYTHON),/usr/bin/python3) workloads/real/prepare.py $(PREPARE_REAL)

.PHONY: prepare-real
