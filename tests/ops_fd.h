/* Shared by the op tests (test_ops.c, test_ops_bn.c): allocation helpers and the finite-
 * difference and dx-accumulation checks, with their step and tolerances (explained in
 * test_ops.c's opening comment). Header-only, static inline. */
#ifndef LB_TEST_OPS_FD_H
#define LB_TEST_OPS_FD_H

#include "lb_ops.h"
#include "lb_test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FD_H 1e-2
#define FD_ATOL 1e-3
#define FD_RTOL 1e-2

/* One generator per test binary, seeded by its main. */
static lb_rng g_rng;

static inline float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}

static inline float *frand(size_t n, float mu, float sd) {
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = mu + sd * lb_rng_normal(&g_rng);
    return p;
}

static inline float *fcopy(const float *x, size_t n) {
    float *p = falloc(n);
    memcpy(p, x, n * sizeof *p);
    return p;
}

static inline double wsum(const float *w, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)w[i] * y[i];
    return s;
}

/* y = f(ctx, x); the numeric gradient of sum(w*y) with respect to every x[i] is compared with g. */
typedef void (*fwd_fn)(void *ctx, const float *x, float *y);

static inline void fd_check(const char *what, fwd_fn f, void *ctx, float *x, size_t nx, size_t ny,
                            const float *w, const float *g) {
    float *y = falloc(ny), *num = falloc(nx);
    for (size_t i = 0; i < nx; i++) {
        float x0 = x[i], xp = (float)(x0 + FD_H), xm = (float)(x0 - FD_H);
        x[i] = xp;
        f(ctx, x, y);
        double lp = wsum(w, y, ny);
        x[i] = xm;
        f(ctx, x, y);
        double lm = wsum(w, y, ny);
        x[i] = x0;
        num[i] = (float)((lp - lm) / ((double)xp - xm));
    }
    lbt_close(g, num, nx, FD_ATOL, FD_RTOL, what);
    free(y);
    free(num);
}

/* Backward with dx_acc must add exactly the overwrite result onto what dx held. */
static inline void acc_check(const char *what, const float *fresh, const float *pre,
                             const float *acc, size_t n) {
    float *want = falloc(n);
    for (size_t i = 0; i < n; i++) want[i] = pre[i] + fresh[i];
    lbt_close(acc, want, n, 1e-6, 1e-6, what);
    free(want);
}

/* Values in [lo, hi) at least `gap` away from each of the kinks. */
static inline float away_from(float lo, float hi, const float *kinks, int nk, float gap) {
    for (;;) {
        float v = lo + (hi - lo) * lb_rng_uniform(&g_rng);
        int ok = 1;
        for (int k = 0; k < nk; k++) ok &= fabsf(v - kinks[k]) >= gap;
        if (ok) return v;
    }
}

#endif
