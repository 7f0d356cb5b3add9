/*
 * check.h - the tiny test helper every unit test uses: CHECK(cond) records a failure with
 * file:line and the condition, and check_done() prints "N passed, N failed" and returns
 * the exit code.
 */
#ifndef HERD_CHECK_H
#define HERD_CHECK_H

#include <stdio.h>  /* printf */
#include <stdlib.h> /* getenv */

static int check_pass, check_fail;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (cond) {                                                                       \
            check_pass++;                                                                 \
        } else {                                                                          \
            check_fail++;                                                                 \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        if (cond) {                                                                       \
            check_pass++;                                                                 \
        } else {                                                                          \
            check_fail++;                                                                 \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            printf(__VA_ARGS__);                                                          \
            printf("\n");                                                                 \
        }                                                                                 \
    } while (0)

/* The model a test_model_* test runs on (HERD_TEST_MODEL, set by tests/cmake/model.cmake),
 * or NULL after printing why the test is skipped (exit code 77). */
static inline const char *check_test_model(void)
{
    const char *path = getenv("HERD_TEST_MODEL");
    if (!path || !*path)
        printf("HERD_TEST_MODEL not set: skipped\n");
    return path && *path ? path : NULL;
}

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_pass, check_fail);
    return check_fail ? 1 : 0;
}

#endif /* HERD_CHECK_H */
