/* Tests of batch norm (lb_bn): finite-difference gradients of x, gamma and beta, dx
 * accumulation, the fast kernels against the reference over shapes that exercise their channel
 * blocks, lane flushes and shifted moments, and the running statistics. The finite-difference
 * step and tolerances are test_ops.c's (ops_fd.h). */
#include "ops_fd.h"

/* ---- batch norm ------------------------------------------------------------------------------ */

typedef struct {
    lb_bn_desc d;
    const float *x, *gamma, *beta;
    float *mean, *invstd;
} bn_ctx;

static void bn_fwd_x(void *p, const float *x, float *y) {
    bn_ctx *c = p;
    lb_bn_forward_train(&c->d, x, c->gamma, c->beta, y, c->mean, c->invstd, NULL, NULL);
}
static void bn_fwd_gamma(void *p, const float *g, float *y) {
    bn_ctx *c = p;
    lb_bn_forward_train(&c->d, c->x, g, c->beta, y, c->mean, c->invstd, NULL, NULL);
}
static void bn_fwd_beta(void *p, const float *b, float *y) {
    bn_ctx *c = p;
    lb_bn_forward_train(&c->d, c->x, c->gamma, b, y, c->mean, c->invstd, NULL, NULL);
}

static void test_bn_fd(void) {
    bn_ctx c = {.d = {.n = 3, .c = 4, .hw = 5, .eps = 1e-5f, .momentum = 0.1f}};
    const size_t nx = 3 * 4 * 5;
    float *x = frand(nx, 0.5f, 1.0f), *gamma = frand(4, 1.0f, 0.3f), *beta = frand(4, 0, 1);
    float *w = frand(nx, 0, 1), *y = falloc(nx), *dx = falloc(nx), *dxr = falloc(nx);
    float mean[4], invstd[4], dg[4], db[4], dgr[4], dbr[4];
    c.x = x;
    c.gamma = gamma;
    c.beta = beta;
    c.mean = mean;
    c.invstd = invstd;
    lb_bn_forward_train(&c.d, x, gamma, beta, y, mean, invstd, NULL, NULL);
    lb_bn_backward(&c.d, x, gamma, mean, invstd, w, dx, 0, dg, db);
    lb_bn_backward_ref(&c.d, x, gamma, mean, invstd, w, dxr, 0, dgr, dbr);
    fd_check("bn dx (fd)", bn_fwd_x, &c, x, nx, nx, w, dx);
    fd_check("bn dx ref (fd)", bn_fwd_x, &c, x, nx, nx, w, dxr);
    fd_check("bn dgamma (fd)", bn_fwd_gamma, &c, gamma, 4, nx, w, dg);
    fd_check("bn dbeta (fd)", bn_fwd_beta, &c, beta, 4, nx, w, db);
    fd_check("bn dgamma ref (fd)", bn_fwd_gamma, &c, gamma, 4, nx, w, dgr);
    fd_check("bn dbeta ref (fd)", bn_fwd_beta, &c, beta, 4, nx, w, dbr);

    /* dx_acc adds; NULL dgamma/dbeta/dx are skipped without touching the others. */
    float *pre = frand(nx, 0, 1), *acc = fcopy(pre, nx);
    lb_bn_backward(&c.d, x, gamma, mean, invstd, w, acc, 1, NULL, NULL);
    acc_check("bn dx_acc", dx, pre, acc, nx);
    memcpy(acc, pre, nx * sizeof *acc);
    lb_bn_backward_ref(&c.d, x, gamma, mean, invstd, w, acc, 1, NULL, NULL);
    acc_check("bn ref dx_acc", dxr, pre, acc, nx);
    float dg2[4] = {0}, db2[4] = {0};
    lb_bn_backward(&c.d, x, gamma, mean, invstd, w, NULL, 0, dg2, db2);
    CHECK(!memcmp(dg, dg2, sizeof dg) && !memcmp(db, db2, sizeof db), "dx NULL keeps dgamma/dbeta");

    /* The normalized output has per-channel mean beta and std gamma (biased, up to eps). */
    int ok = 1;
    for (int ch = 0; ch < 4; ch++) {
        double s = 0, s2 = 0;
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) {
                double v = y[(i * 4 + ch) * 5 + j];
                s += v;
                s2 += v * v;
            }
        double m = s / 15, sd = sqrt(s2 / 15 - m * m);
        ok &= fabs(m - beta[ch]) < 1e-5 && fabs(sd - fabs(gamma[ch])) < 1e-4;
    }
    CHECK(ok, "bn output moments are beta, |gamma|");
    free(x), free(gamma), free(beta), free(w), free(y), free(dx), free(dxr), free(pre), free(acc);
}

/* Fast kernels against the references, on a shape large enough to run in parallel, with a large
 * channel mean (|mean|/std = 60) and a plane size that is not a multiple of the chunk. */
static void test_bn_fast_vs_ref(int n, int c, int hw, float mu, float sd) {
    lb_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f};
    const size_t nx = (size_t)n * c * hw;
    float *x = frand(nx, mu, sd), *gamma = frand(c, 1, 0.5f), *beta = frand(c, 0, 1);
    float *dy = frand(nx, 0, 1), *y = falloc(nx), *yr = falloc(nx), *y2 = falloc(nx);
    float *m = falloc(c), *is = falloc(c), *mr = falloc(c), *isr = falloc(c);
    float *rm = frand(c, 0, 1), *rv = frand(c, 2, 0.1f), *rmr = fcopy(rm, c), *rvr = fcopy(rv, c);
    char what[128];
    lb_threads_set(2);
    lb_bn_forward_train(&d, x, gamma, beta, y, m, is, rm, rv);
    lb_bn_forward_train_ref(&d, x, gamma, beta, yr, mr, isr, rmr, rvr);
    snprintf(what, sizeof what, "bn fast==ref y (%dx%dx%d, mean %g)", n, c, hw, mu);
    lbt_close(y, yr, nx, 2e-5, 1e-4, what);
    lbt_close(m, mr, c, 1e-6 * (fabsf(mu) + sd), 1e-6, "bn fast==ref mean");
    lbt_close(is, isr, c, 0, 1e-5, "bn fast==ref invstd");
    lbt_close(rm, rmr, c, 1e-6 * (fabsf(mu) + sd), 1e-6, "bn fast==ref running mean");
    lbt_close(rv, rvr, c, 0, 1e-5, "bn fast==ref running var");

    float *dx = falloc(nx), *dxr = falloc(nx), *dg = falloc(c), *db = falloc(c);
    float *dgr = falloc(c), *dbr = falloc(c);
    lb_bn_backward(&d, x, gamma, mr, isr, dy, dx, 0, dg, db);
    lb_bn_backward_ref(&d, x, gamma, mr, isr, dy, dxr, 0, dgr, dbr);
    snprintf(what, sizeof what, "bn fast==ref dx (%dx%dx%d)", n, c, hw);
    lbt_close(dx, dxr, nx, 2e-5, 1e-3, what);
    lbt_close(dg, dgr, c, 1e-3, 1e-4, "bn fast==ref dgamma");
    lbt_close(db, dbr, c, 1e-3, 1e-4, "bn fast==ref dbeta");

    /* Deterministic: 1 thread and 2 threads give the same bits; in place equals out of place. */
    float *dx1 = falloc(nx), *m1 = falloc(c), *is1 = falloc(c);
    lb_threads_set(1);
    lb_bn_forward_train(&d, x, gamma, beta, y2, m1, is1, NULL, NULL);
    lb_bn_backward(&d, x, gamma, mr, isr, dy, dx1, 0, NULL, NULL);
    lb_threads_set(2);
    CHECK(!memcmp(y, y2, nx * sizeof *y) && !memcmp(m, m1, c * sizeof *m) &&
              !memcmp(is, is1, c * sizeof *is) && !memcmp(dx, dx1, nx * sizeof *dx),
          "bn bitwise equal across thread counts");
    memcpy(y2, x, nx * sizeof *x);
    lb_bn_forward_train(&d, y2, gamma, beta, y2, m1, is1, NULL, NULL);
    CHECK(!memcmp(y, y2, nx * sizeof *y), "bn forward in place");
    /* per-plane moments handed in (as a conv produces them) give the same bits */
    {
        double *pm = malloc((size_t)n * c * 2 * sizeof *pm);
        for (size_t pl = 0; pl < (size_t)n * c; pl++)
            lb_bn_plane_moments(x + pl * hw, (size_t)hw, pm + 2 * pl);
        lb_bn_desc dm = d;
        dm.moments = pm;
        lb_bn_forward_train(&dm, x, gamma, beta, y2, m1, is1, NULL, NULL);
        CHECK(!memcmp(y, y2, nx * sizeof *y) && !memcmp(m, m1, c * sizeof *m) &&
                  !memcmp(is, is1, c * sizeof *is),
              "bn forward with precomputed moments (%dx%dx%d)", n, c, hw);
        free(pm);
    }
    memcpy(y2, dy, nx * sizeof *dy);
    lb_bn_backward(&d, x, gamma, mr, isr, y2, y2, 0, NULL, NULL);
    CHECK(!memcmp(dx, y2, nx * sizeof *dx), "bn backward in place (dx == dy)");

    /* Fused ReLU / ReLU6 gradient mask: equals masking dy first, then the unfused backward. */
    for (int act = 1; act <= 2; act++) {
        lb_bn_desc da = d;
        da.act = act;
        float *ya = falloc(nx), *ga = fcopy(dy, nx), *gm = fcopy(dy, nx), *dxa = falloc(nx);
        for (size_t i = 0; i < nx; i++) ya[i] = 4.0f * x[i] - 4.0f * mu; /* both kinks hit */
        if (act == 1)
            lb_relu_backward(nx, ya, dy, gm, 0);
        else
            lb_relu6_backward(nx, ya, dy, gm, 0);
        lb_bn_backward_act(&da, x, ya, gamma, mr, isr, ga, dxa, 0, NULL, NULL);
        CHECK(!memcmp(ga, gm, nx * sizeof *ga), "bn act %d: dy left masked (%dx%dx%d)", act, n, c,
              hw);
        float *gi = fcopy(dy, nx); /* in place, as the graph runs it: dx over dy */
        lb_bn_backward_act(&da, x, ya, gamma, mr, isr, gi, gi, 0, NULL, NULL);
        CHECK(!memcmp(gi, dxa, nx * sizeof *gi), "bn act %d in place (dx == dy)", act);
        free(gi);
        lb_bn_backward_ref(&d, x, gamma, mr, isr, gm, dxr, 0, NULL, NULL);
        snprintf(what, sizeof what, "bn act %d fast==ref dx (%dx%dx%d)", act, n, c, hw);
        lbt_close(dxa, dxr, nx, 2e-5, 1e-3, what);
        free(ya), free(ga), free(gm), free(dxa);
    }

    /* A folded residual add (y = act(BN(x) + r)): the bits of BN, then lb_add_forward; backward:
     * the bits of lb_add_backward (g to dy in place and to the residual's gradient), then BN's
     * backward on g. Train and eval forward, stored and accumulated residual gradient. */
    for (int act = 1; act <= 2; act++) {
        lb_bn_desc da = d;
        float *r = frand(nx, 0, 2), *ys = falloc(nx), *yf = falloc(nx);
        lb_bn_forward_train(&d, x, gamma, beta, ys, m1, is1, NULL, NULL);
        lb_add_forward(nx, act, ys, r, ys);
        da.act = act, da.res = r;
        lb_bn_forward_train(&da, x, gamma, beta, yf, m1, is1, NULL, NULL);
        CHECK(!memcmp(ys, yf, nx * sizeof *ys), "bn+add act %d train forward (%dx%dx%d)", act, n, c,
              hw);
        for (int acc = 0; acc < 2; acc++) {
            float *gs = fcopy(dy, nx), *gf = fcopy(dy, nx), *dxs = falloc(nx), *dxf = falloc(nx);
            float *drs = frand(nx, 0, 1), *drf = fcopy(drs, nx);
            lb_add_backward(nx, act, ys, gs, gs, 0, drs, acc);
            lb_bn_backward(&d, x, gamma, mr, isr, gs, dxs, 0, dg, db);
            float *dgf = falloc(c), *dbf = falloc(c);
            da.dres = drf, da.dres_acc = acc;
            lb_bn_backward_act(&da, x, ys, gamma, mr, isr, gf, dxf, 0, dgf, dbf);
            da.dres = NULL;
            CHECK(!memcmp(gs, gf, nx * sizeof *gs) && !memcmp(drs, drf, nx * sizeof *drs) &&
                      !memcmp(dxs, dxf, nx * sizeof *dxs) && !memcmp(dg, dgf, c * sizeof *dg) &&
                      !memcmp(db, dbf, c * sizeof *db),
                  "bn+add act %d backward, residual acc %d (%dx%dx%d)", act, acc, n, c, hw);
            free(gs), free(gf), free(dxs), free(dxf), free(drs), free(drf), free(dgf), free(dbf);
        }
        lb_bn_forward_eval(&d, x, gamma, beta, rmr, rvr, ys);
        lb_add_forward(nx, act, ys, r, ys);
        lb_bn_forward_eval(&da, x, gamma, beta, rmr, rvr, yf);
        CHECK(!memcmp(ys, yf, nx * sizeof *ys), "bn+add act %d eval forward", act);
        free(r), free(ys), free(yf);
    }

    /* Eval: y = (x - run_mean)/sqrt(run_var + eps)*gamma + beta. */
    lb_bn_forward_eval(&d, x, gamma, beta, rmr, rvr, y);
    for (size_t i = 0; i < nx; i++) {
        int ch = (int)(i / hw % c);
        yr[i] = (float)((x[i] - (double)rmr[ch]) / sqrt(rvr[ch] + 1e-5) * gamma[ch] + beta[ch]);
    }
    lbt_close(y, yr, nx, 1e-4, 1e-4, "bn eval formula");
    free(x), free(gamma), free(beta), free(dy), free(y), free(yr), free(y2), free(m), free(is);
    free(mr), free(isr), free(rm), free(rv), free(rmr), free(rvr), free(dx), free(dxr), free(dg);
    free(db), free(dgr), free(dbr), free(dx1), free(m1), free(is1);
}

/* Running statistics by hand: constant channel 0 (var 0), channel 1 = {0, 1, 2, 3}. */
static void test_bn_running(void) {
    lb_bn_desc d = {.n = 2, .c = 2, .hw = 2, .eps = 1e-5f, .momentum = 0.1f};
    const float x[8] = {5, 5, 0, 1, 5, 5, 2, 3};
    float y[8], m[2], is[2], rm[2] = {1, 1}, rv[2] = {1, 1};
    lb_bn_forward_train(&d, x, NULL, NULL, y, m, is, rm, rv);
    CHECK_NEAR(m[0], 5, 0, 1e-7, "mean0");
    CHECK_NEAR(m[1], 1.5, 0, 1e-7, "mean1");
    CHECK_NEAR(is[0], 1 / sqrt(1e-5), 0, 1e-4, "invstd0");
    CHECK_NEAR(is[1], 1 / sqrt(1.25 + 1e-5), 0, 1e-6, "invstd1");
    CHECK_NEAR(rm[0], 0.9 + 0.5, 0, 1e-6, "run mean0");
    CHECK_NEAR(rm[1], 0.9 + 0.15, 0, 1e-6, "run mean1");
    CHECK_NEAR(rv[0], 0.9, 0, 1e-6, "run var0");
    CHECK_NEAR(rv[1], 0.9 + 0.1 * 5.0 / 3.0, 0, 1e-6, "run var1 unbiased");
    CHECK(y[0] == 0 && y[5] == 0, "constant channel normalizes to 0");
}

int main(void) {
    lb_rng_seed(&g_rng, 1234);
    const char *q = getenv("LOWBIT_QUICK");
    int quick = q && q[0] && q[0] != '0';
    lb_threads_set(2);
    test_bn_fd();
    test_bn_running();
    test_bn_fast_vs_ref(8, 16, 300, 0, 1);
    test_bn_fast_vs_ref(4, 3, 1000, 60, 1);
    test_bn_fast_vs_ref(3, 5, 7, -2, 3);
    test_bn_fast_vs_ref(4, 300, 3, 1, 1);  /* channel blocks beyond one stack group */
    test_bn_fast_vs_ref(64, 10, 1, 0, 1);  /* hw = 1: BN after a linear layer */
    test_bn_fast_vs_ref(40, 6, 49, 30, 1); /* 7x7 planes: lanes flushed every 4 images, tails */
    test_bn_fast_vs_ref(16, 4, 64, 3000, 0.5f); /* |mean| >> std: shifted moments */
    if (!quick) test_bn_fast_vs_ref(32, 32, 196, 1, 2);
    TEST_MAIN_END("test_ops_bn");
}
