# Other projects' test suites against tinymalloc (issue 8), included by the root Makefile.
#   make test-outside        the `make test` run (tests/outside/test_outside.sh, a few minutes)
#   make test-outside-full   more Python modules and stress configurations
# Sources and packages are fetched with apt-get into cache/outside/ (ignored by git).

test-outside: lib
	bash tests/outside/test_outside.sh

test-outside-full: lib
	bash tests/outside/test_outside.sh --full

.PHONY: test-outside test-outside-full
