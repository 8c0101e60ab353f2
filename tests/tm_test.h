/* A minimal test harness for the C tests: each CHECK that fails prints the expression and
 * location; each TEST case prints `PASS: name` or `FAIL: name`, which tests/run.py counts. */
#ifndef TM_TEST_H
#define TM_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int tm_test_failed_cases;
static int tm_test_case_failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stdout, "  check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);       \
            fflush(stdout);                                                                    \
            tm_test_case_failed = 1;                                                           \
        }                                                                                      \
    } while (0)

/* Run one case: a function void name(void). */
#define RUN(fn)                                                                                \
    do {                                                                                       \
        tm_test_case_failed = 0;                                                               \
        fn();                                                                                  \
        printf("%s: %s\n", tm_test_case_failed ? "FAIL" : "PASS", #fn);                        \
        fflush(stdout);                                                                        \
        tm_test_failed_cases += tm_test_case_failed;                                           \
    } while (0)

#define TEST_EXIT() return tm_test_failed_cases ? 1 : 0

#endif
