/* Minimal assertions for unit tests: each failure prints file:line and the values, then exits 1. */
#ifndef CAP_TEST_H
#define CAP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cap_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        cap_test_checks++;                                                                         \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(want, got)                                                                        \
    do {                                                                                           \
        long long w_ = (long long)(want), g_ = (long long)(got);                                   \
        cap_test_checks++;                                                                         \
        if (w_ != g_) {                                                                            \
            fprintf(stderr, "%s:%d: %s: want %lld, got %lld\n", __FILE__, __LINE__, #got, w_, g_); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(want, got)                                                                       \
    do {                                                                                           \
        const char *w_ = (want), *g_ = (got);                                                      \
        cap_test_checks++;                                                                         \
        if (!g_ || strcmp(w_, g_) != 0) {                                                          \
            fprintf(stderr, "%s:%d: %s:\n  want \"%s\"\n  got  \"%s\"\n", __FILE__, __LINE__, #got,  \
                    w_, g_ ? g_ : "(null)");                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        printf("%d checks passed\n", cap_test_checks);                                             \
        return 0;                                                                                  \
    } while (0)

#endif
