/* A tiny test harness: checks count, never abort, and every binary ends with the plain line
 * "<name>: N passed, N failed" that scripts/test.sh sums up. Header-only on purpose (tests only).
 */
#ifndef LB_TEST_H
#define LB_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int lbt_pass, lbt_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            lbt_pass++;                                                                            \
        } else {                                                                                   \
            lbt_fail++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* |a-b| <= atol + rtol*|b| */
#define CHECK_NEAR(a, b, atol, rtol, what)                                                         \
    do {                                                                                           \
        double lbt_a = (a), lbt_b = (b);                                                           \
        CHECK(fabs(lbt_a - lbt_b) <= (atol) + (rtol)*fabs(lbt_b), "%s: %.9g vs %.9g", what, lbt_a, \
              lbt_b);                                                                              \
    } while (0)

/* Compares whole arrays, counting one check, reporting the worst element. */
static inline int lbt_close(const float *a, const float *b, size_t n, double atol, double rtol,
                            const char *what) {
    size_t worst = 0;
    double wexcess = -1;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), lim = atol + rtol * fabs((double)b[i]);
        if (!(d <= lim)) bad = 1;
        if (!(d - lim <= wexcess)) {
            wexcess = d - lim;
            worst = i;
        }
    }
    if (bad) {
        lbt_fail++;
        fprintf(stderr, "FAIL %s: element %zu: %.9g vs %.9g (n=%zu, atol %g, rtol %g)\n", what,
                worst, a[worst], b[worst], n, atol, rtol);
    } else {
        lbt_pass++;
    }
    return !bad;
}

#define TEST_MAIN_END(name)                                                                        \
    do {                                                                                           \
        printf("%s: %d passed, %d failed\n", name, lbt_pass, lbt_fail);                            \
        return lbt_fail ? 1 : 0;                                                                   \
    } while (0)

#endif
