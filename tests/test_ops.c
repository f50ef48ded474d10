/* Tests of the non-GEMM ops (activations, pooling, add, shortcut, dropout, xent):
 * finite-difference gradients, dx accumulation, fast vs reference, hand-computed values. Batch
 * norm is in test_ops_bn.c, the PyTorch comparison in test_torch_ops.c.
 *
 * Finite differences run on the float kernels: L = sum_i w_i*y_i is summed in double with random
 * w, central differences with step h = 1e-2 (the float round-off of L, ~1e-6, over 2h gives ~1e-4;
 * truncation is O(h^2)). Tolerance: |analytic - numeric| <= 1e-3 + 1e-2*|numeric|. Piecewise
 * linear ops get inputs at least 0.05 from every kink so no step crosses one. */
#include "ops_fd.h"

/* ---- activations ----------------------------------------------------------------------------- */

typedef struct {
    int six;
} act_ctx;

static void act_fwd(void *p, const float *x, float *y) {
    act_ctx *c = p;
    (c->six ? lb_relu6_forward : lb_relu_forward)(40, x, y);
}

static void test_act(int six) {
    const size_t n = 40;
    const float kinks[2] = {0, 6};
    float x[40], y[40], yip[40], dx[40], pre[40], acc[40], w[40];
    for (size_t i = 0; i < n; i++) {
        x[i] = away_from(-3, 9, kinks, 2, 0.05f);
        w[i] = lb_rng_normal(&g_rng);
        pre[i] = acc[i] = lb_rng_normal(&g_rng);
    }
    act_ctx c = {six};
    act_fwd(&c, x, y);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float want = x[i] > 0 ? x[i] : 0;
        if (six && want > 6) want = 6;
        ok &= y[i] == want;
    }
    CHECK(ok, "%s forward values", six ? "relu6" : "relu");
    memcpy(yip, x, sizeof x);
    act_fwd(&c, yip, yip);
    CHECK(!memcmp(y, yip, sizeof y), "%s in place", six ? "relu6" : "relu");
    (six ? lb_relu6_backward : lb_relu_backward)(n, y, w, dx, 0);
    fd_check(six ? "relu6 dx (fd)" : "relu dx (fd)", act_fwd, &c, x, n, n, w, dx);
    (six ? lb_relu6_backward : lb_relu_backward)(n, y, w, acc, 1);
    acc_check(six ? "relu6 dx_acc" : "relu dx_acc", dx, pre, acc, n);

    /* At the clip points the gradient is 0 (PyTorch's convention). */
    const float edge[3] = {0, 6, 3};
    float ye[3], ge[3], dye[3] = {1, 1, 1};
    lb_relu6_forward(3, edge, ye);
    lb_relu6_backward(3, ye, dye, ge, 0);
    CHECK(ge[0] == 0 && ge[1] == 0 && ge[2] == 1, "relu6 grad at 0, 6, 3: %g %g %g", ge[0], ge[1],
          ge[2]);
    /* A NaN passes through both forwards (so the NaN trap sees it), as in PyTorch. */
    const float bad[2] = {NAN, -NAN};
    float yb[2];
    lb_relu_forward(2, bad, yb);
    CHECK(isnan(yb[0]) && isnan(yb[1]), "relu keeps NaN");
    lb_relu6_forward(2, bad, yb);
    CHECK(isnan(yb[0]) && isnan(yb[1]), "relu6 keeps NaN");
}

/* Large enough for the parallel path: same values as a serial loop. */
static void test_act_large(void) {
    const size_t n = 300001;
    float *x = frand(n, 2, 4), *y = falloc(n), *dy = frand(n, 0, 1), *dx = falloc(n);
    lb_relu6_forward(n, x, y);
    lb_relu6_backward(n, y, dy, dx, 0);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float want = x[i] < 0 ? 0 : x[i] > 6 ? 6 : x[i];
        ok &= y[i] == want && dx[i] == (x[i] > 0 && x[i] < 6 ? dy[i] : 0);
    }
    CHECK(ok, "relu6 large forward/backward");
    free(x), free(y), free(dy), free(dx);
}

/* ---- pooling --------------------------------------------------------------------------------- */

typedef struct {
    lb_pool_desc d;
    int avg;
    int32_t *am;
} pool_ctx;

static void pool_fwd(void *p, const float *x, float *y) {
    pool_ctx *c = p;
    if (c->avg)
        lb_avgpool_forward(&c->d, x, y);
    else
        lb_maxpool_forward(&c->d, x, y, c->am);
}

static void test_pool_fd(int avg, int h, int w, int k, int s, int pad) {
    pool_ctx c = {.avg = avg};
    CHECK(lb_pool_desc_init(&c.d, 2, 3, h, w, k, s, pad) == LB_OK, "pool desc");
    const size_t nx = (size_t)6 * h * w, ny = (size_t)6 * c.d.oh * c.d.ow;
    float *x = falloc(nx), *y = falloc(ny), *w_ = frand(ny, 0, 1), *dx = falloc(nx);
    c.am = calloc(ny, sizeof *c.am);
    /* Distinct values 0.1 apart (a shuffled ramp): no max changes within a step. */
    for (size_t i = 0; i < nx; i++) x[i] = 0.1f * (float)i - 3.0f;
    for (size_t i = nx - 1; i > 0; i--) {
        size_t j = lb_rng_below(&g_rng, (uint32_t)(i + 1));
        float t = x[i];
        x[i] = x[j];
        x[j] = t;
    }
    pool_fwd(&c, x, y);
    if (avg)
        lb_avgpool_backward(&c.d, w_, dx, 0);
    else
        lb_maxpool_backward(&c.d, c.am, w_, dx, 0);
    char what[96];
    snprintf(what, sizeof what, "%s %dx%d k%d s%d p%d dx (fd)", avg ? "avgpool" : "maxpool", h, w,
             k, s, pad);
    fd_check(what, pool_fwd, &c, x, nx, ny, w_, dx);
    float *pre = frand(nx, 0, 1), *acc = fcopy(pre, nx);
    if (avg)
        lb_avgpool_backward(&c.d, w_, acc, 1);
    else
        lb_maxpool_backward(&c.d, c.am, w_, acc, 1);
    snprintf(what, sizeof what, "%s dx_acc", avg ? "avgpool" : "maxpool");
    acc_check(what, dx, pre, acc, nx);
    if (!avg) { /* values against a direct window scan (padding is -inf) */
        int ok = 1;
        for (int p = 0; p < 6; p++)
            for (int oy = 0; oy < c.d.oh; oy++)
                for (int ox = 0; ox < c.d.ow; ox++) {
                    float m = -INFINITY;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * s - pad + ky, ix = ox * s - pad + kx;
                            if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                m = fmaxf(m, x[(size_t)p * h * w + iy * w + ix]);
                        }
                    size_t o = ((size_t)p * c.d.oh + oy) * c.d.ow + ox;
                    ok &= y[o] == m && x[(size_t)p * h * w + c.am[o]] == m;
                }
        CHECK(ok, "maxpool k%d s%d p%d values and argmax", k, s, pad);
    } else { /* count_include_pad: corner window of 3x3 p1 has 4 real values over 9 */
        if (k == 3 && pad == 1) {
            float want = (x[0] + x[1] + x[w] + x[w + 1]) / 9.0f;
            CHECK_NEAR(y[0], want, 1e-6, 1e-6, "avgpool corner divides by k*k");
        }
    }
    free(x), free(y), free(w_), free(dx), free(c.am), free(pre), free(acc);
}

static void test_maxpool_ties(void) {
    lb_pool_desc d;
    /* 2x2 s2 (vectorized path): windows {1,3 / 3,2} and all-equal. */
    CHECK(lb_pool_desc_init(&d, 1, 1, 2, 4, 2, 2, 0) == LB_OK, "desc");
    const float x[8] = {1, 3, 7, 7, 3, 2, 7, 7};
    float y[2], dy[2] = {1, 10}, dx[8];
    int32_t am[2];
    lb_maxpool_forward(&d, x, y, am);
    CHECK(y[0] == 3 && am[0] == 1 && y[1] == 7 && am[1] == 2, "2x2 ties: first max (%d, %d)", am[0],
          am[1]);
    lb_maxpool_backward(&d, am, dy, dx, 0);
    CHECK(dx[1] == 1 && dx[4] == 0 && dx[2] == 10 && dx[3] == 0 && dx[6] == 0 && dx[7] == 0,
          "2x2 ties: gradient to the first max only");
    /* 3x3 s2 p1 (general path): all-equal plane, and an all-negative plane next to padding. */
    CHECK(lb_pool_desc_init(&d, 1, 2, 3, 3, 3, 2, 1) == LB_OK, "desc");
    float x2[18], y2[8], dy2[8], dx2[18];
    int32_t am2[8];
    for (int i = 0; i < 9; i++) x2[i] = 2, x2[9 + i] = -5.0f - (float)i;
    for (int i = 0; i < 8; i++) dy2[i] = 1;
    lb_maxpool_forward(&d, x2, y2, am2);
    CHECK(am2[0] == 0 && am2[1] == 1 && am2[2] == 3 && am2[3] == 4, "3x3 ties: %d %d %d %d", am2[0],
          am2[1], am2[2], am2[3]);
    CHECK(y2[4] == -5 && y2[5] == -6 && y2[6] == -8 && y2[7] == -9, "padding is -inf: %g %g %g %g",
          y2[4], y2[5], y2[6], y2[7]);
    lb_maxpool_backward(&d, am2, dy2, dx2, 0);
    CHECK(dx2[0] == 1 && dx2[1] == 1 && dx2[2] == 0 && dx2[4] == 1, "3x3 tie gradients");

    CHECK(lb_pool_desc_init(&d, 1, 1, 7, 7, 3, 2, 1) == LB_OK && d.oh == 4 && d.ow == 4, "oh 4");
    CHECK(lb_pool_desc_init(&d, 1, 1, 7, 6, 2, 2, 0) == LB_OK && d.oh == 3 && d.ow == 3, "floor");
    CHECK(lb_pool_desc_init(&d, 1, 1, 7, 7, 2, 2, 2) == LB_EINVAL, "pad > k/2 rejected");
    CHECK(lb_pool_desc_init(&d, 1, 1, 2, 2, 5, 1, 1) == LB_EINVAL, "window too large rejected");
    CHECK(lb_pool_desc_init(&d, 1, 1, 2, 2, 2, 0, 0) == LB_EINVAL, "stride 0 rejected");
}

typedef struct {
    int n, c, hw;
} gap_ctx;

static void gap_fwd(void *p, const float *x, float *y) {
    gap_ctx *c = p;
    lb_gap_forward(c->n, c->c, c->hw, x, y);
}

static void test_gap(void) {
    gap_ctx c = {2, 3, 7};
    float *x = frand(42, 0, 1), y[6], *w = frand(6, 0, 1), dx[42], pre[42], acc[42];
    gap_fwd(&c, x, y);
    double s = 0;
    for (int j = 0; j < 7; j++) s += x[7 + j];
    CHECK_NEAR(y[1], s / 7, 1e-6, 1e-6, "gap value");
    lb_gap_backward(2, 3, 7, w, dx, 0);
    fd_check("gap dx (fd)", gap_fwd, &c, x, 42, 6, w, dx);
    for (int i = 0; i < 42; i++) pre[i] = acc[i] = lb_rng_normal(&g_rng);
    lb_gap_backward(2, 3, 7, w, acc, 1);
    acc_check("gap dx_acc", dx, pre, acc, 42);
    free(x), free(w);
}

/* ---- add, shortcut --------------------------------------------------------------------------- */

static void test_add(void) {
    const size_t n = 200003;
    float *a = frand(n, 0, 1), *b = frand(n, 0, 1), *y = falloc(n), *b2 = fcopy(b, n);
    lb_add_forward(n, 0, a, b, y);
    lb_add_forward(n, 0, a, b2, b2);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= y[i] == a[i] + b[i] && b2[i] == y[i];
    CHECK(ok, "add values, in place");
    free(a), free(b), free(y), free(b2);
}

typedef struct {
    int act;
    const float *b;
} addact_ctx;

/* y = act(x + b) as the two separate ops */
static void addact_sep(void *p, const float *x, float *y) {
    addact_ctx *c = p;
    size_t n = 40;
    for (size_t i = 0; i < n; i++) y[i] = x[i] + c->b[i];
    if (c->act == 1) lb_relu_forward(n, y, y);
    if (c->act == 2) lb_relu6_forward(n, y, y);
}

/* The fused add+activation, both directions: the same bits as add then ReLU/ReLU6, the
 * finite-difference gradient, accumulation, in place over operand a, and y = a + a. Large sizes
 * also run the parallel paths against the small-size results. */
static void test_add_act(int act) {
    const size_t n = 40;
    const float kinks[2] = {0, 6};
    float a[40], b[40], y[40], ys[40], dy[40], da[40], db[40], pre[40], acc[40];
    for (size_t i = 0; i < n; i++) {
        b[i] = lb_rng_normal(&g_rng);
        a[i] = away_from(-3, 9, kinks, 2, 0.05f) - b[i];
        dy[i] = lb_rng_normal(&g_rng);
        pre[i] = acc[i] = lb_rng_normal(&g_rng);
    }
    addact_ctx c = {act, b};
    lb_add_forward(n, act, a, b, y);
    addact_sep(&c, a, ys);
    CHECK(!memcmp(y, ys, sizeof y), "add act %d forward = add then act", act);
    float g[40];
    memcpy(g, dy, sizeof g);
    lb_add_backward(n, act, y, g, da, 0, db, 0);
    CHECK(!memcmp(da, db, sizeof da), "add act %d: da == db", act);
    fd_check("add act da (fd)", addact_sep, &c, a, n, n, dy, da);
    float sep[40];
    if (act == 1)
        lb_relu_backward(n, y, dy, sep, 0);
    else if (act == 2)
        lb_relu6_backward(n, y, dy, sep, 0);
    else
        memcpy(sep, dy, sizeof sep);
    CHECK(!memcmp(da, sep, sizeof da), "add act %d backward = the activation's backward", act);
    CHECK(!memcmp(g, dy, sizeof g), "add act %d: dy read only unless da is dy", act);
    memcpy(g, dy, sizeof g);
    lb_add_backward(n, act, y, g, NULL, 0, acc, 1);
    acc_check("add act db_acc", da, pre, acc, n);
    /* in place over a: da is dy */
    memcpy(g, dy, sizeof g);
    lb_add_backward(n, act, y, g, g, 0, NULL, 0);
    CHECK(!memcmp(g, da, sizeof g), "add act %d in place", act);
    /* y = a + a: both contributions land in one buffer */
    memcpy(g, dy, sizeof g);
    lb_add_backward(n, act, y, g, acc, 0, acc, 1);
    int ok = 1;
    for (size_t i = 0; i < n; i++) ok &= acc[i] == da[i] + da[i];
    CHECK(ok, "add act %d: same operand twice", act);

    const size_t N = 300007;
    float *A = frand(N, 0, 2), *Bv = frand(N, 0, 2), *Y = falloc(N), *DY = frand(N, 0, 1);
    float *DA = falloc(N), *DB = frand(N, 0, 1), *DB0 = fcopy(DB, N), *G = fcopy(DY, N);
    lb_add_forward(N, act, A, Bv, Y);
    lb_add_backward(N, act, Y, G, DA, 0, DB, 1);
    ok = 1;
    for (size_t i = 0; i < N; i++) {
        float v = A[i] + Bv[i];
        if (act) v = v < 0.0f ? 0.0f : v;
        if (act == 2) v = v > 6.0f ? 6.0f : v;
        float gi = act == 0 ? DY[i] : (v > 0.0f && (act == 1 || v < 6.0f)) ? DY[i] : 0.0f;
        ok &= Y[i] == v && DA[i] == gi && DB[i] == DB0[i] + gi;
    }
    CHECK(ok, "add act %d: parallel sizes", act);
    free(A), free(Bv), free(Y), free(DY), free(DA), free(DB), free(DB0), free(G);
}

typedef struct {
    int n, cin, h, w, cout, stride;
} sc_ctx;

static void sc_fwd(void *p, const float *x, float *y) {
    sc_ctx *c = p;
    lb_shortcut_forward(c->n, c->cin, c->h, c->w, c->cout, c->stride, x, y);
}

static void test_shortcut(int cin, int cout, int stride) {
    sc_ctx c = {2, cin, 5, 6, cout, stride};
    const int oh = (5 + stride - 1) / stride, ow = (6 + stride - 1) / stride;
    const size_t nx = (size_t)2 * cin * 30, ny = (size_t)2 * cout * oh * ow;
    float *x = frand(nx, 0, 1), *y = falloc(ny), *w = frand(ny, 0, 1), *dx = falloc(nx);
    sc_fwd(&c, x, y);
    /* y = zero-pad channels ((cout-cin)/2 before) of x[:, :, ::s, ::s] */
    int ok = 1, before = (cout - cin) / 2;
    for (int i = 0; i < 2; i++)
        for (int co = 0; co < cout; co++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int ci = co - before;
                    float want = ci < 0 || ci >= cin
                                     ? 0
                                     : x[((i * cin + ci) * 5 + oy * stride) * 6 + ox * stride];
                    ok &= y[((i * cout + co) * oh + oy) * ow + ox] == want;
                }
    CHECK(ok, "shortcut %d->%d s%d values", cin, cout, stride);
    lb_shortcut_backward(2, cin, 5, 6, cout, stride, w, dx, 0);
    char what[64];
    snprintf(what, sizeof what, "shortcut %d->%d s%d dx (fd)", cin, cout, stride);
    fd_check(what, sc_fwd, &c, x, nx, ny, w, dx);
    float *pre = frand(nx, 0, 1), *acc = fcopy(pre, nx);
    lb_shortcut_backward(2, cin, 5, 6, cout, stride, w, acc, 1);
    acc_check("shortcut dx_acc", dx, pre, acc, nx);
    free(x), free(y), free(w), free(dx), free(pre), free(acc);
}

/* ---- dropout --------------------------------------------------------------------------------- */

typedef struct {
    size_t n;
    float p;
    uint8_t *mask;
} drop_ctx;

static void drop_fwd(void *pp, const float *x, float *y) {
    drop_ctx *c = pp;
    lb_rng r;
    lb_rng_seed(&r, 77); /* same mask every call: the op is then linear in x */
    lb_dropout_forward(c->n, c->p, x, y, c->mask, &r);
}

static void test_dropout(void) {
    const size_t n = 200000;
    const float p = 0.3f;
    float *x = frand(n, 0, 1), *y = falloc(n), *y2 = falloc(n), *dy = frand(n, 0, 1);
    float *dx = falloc(n);
    uint8_t *m = malloc(n), *m2 = malloc(n);
    lb_rng r1, r2;
    lb_rng_seed(&r1, 5);
    lb_rng_seed(&r2, 5);
    lb_threads_set(2);
    lb_dropout_forward(n, p, x, y, m, &r1);
    lb_threads_set(1);
    lb_dropout_forward(n, p, x, y2, m2, &r2);
    lb_threads_set(2);
    CHECK(!memcmp(m, m2, n) && !memcmp(y, y2, n * sizeof *y), "dropout same seed, same mask");
    CHECK(lb_rng_u64(&r1) == lb_rng_u64(&r2), "dropout advances the rng identically");
    size_t dropped = 0;
    int ok = 1;
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) {
        dropped += !m[i];
        ok &= m[i] ? y[i] == x[i] * scale : y[i] == 0;
    }
    double rate = (double)dropped / n; /* sd of the rate: sqrt(.21/2e5) = 0.001 */
    CHECK(fabs(rate - p) < 0.006, "dropout rate %g vs %g", rate, p);
    CHECK(ok, "dropout keeps x/(1-p), zeroes the rest");
    lb_dropout_forward(n, p, x, y2, m2, &r1);
    CHECK(memcmp(m, m2, n) != 0, "dropout next call draws a new mask");
    lb_dropout_backward(n, p, m, dy, dx, 0);
    ok = 1;
    for (size_t i = 0; i < n; i++) ok &= dx[i] == (m[i] ? dy[i] * scale : 0.0f);
    CHECK(ok, "dropout backward uses the mask");
    float *pre = frand(n, 0, 1), *acc = fcopy(pre, n);
    lb_dropout_backward(n, p, m, dy, acc, 1);
    acc_check("dropout dx_acc", dx, pre, acc, n);

    drop_ctx c = {64, 0.5f, m};
    float w[64], g[64];
    for (int i = 0; i < 64; i++) w[i] = lb_rng_normal(&g_rng);
    drop_fwd(&c, x, y);
    lb_dropout_backward(64, 0.5f, m, w, g, 0);
    fd_check("dropout dx (fd)", drop_fwd, &c, x, 64, 64, w, g);

    /* Without a mask the output is the same; an odd length covers the unpaired last draw. */
    lb_rng_seed(&r1, 9);
    lb_rng_seed(&r2, 9);
    lb_dropout_forward(n - 1, p, x, y, m, &r1);
    lb_dropout_forward(n - 1, p, x, y2, NULL, &r2);
    CHECK(!memcmp(y, y2, (n - 1) * sizeof *y), "dropout without mask, odd n");

    lb_dropout_forward(5, 0.0f, x, y, m, &r1);
    CHECK(!memcmp(x, y, 5 * sizeof *x) && m[0] == 1, "dropout p=0 is identity");
    lb_dropout_forward(5, 1.0f, x, y, m, &r1);
    lb_dropout_backward(5, 1.0f, m, dy, dx, 0);
    CHECK(y[0] == 0 && y[4] == 0 && m[0] == 0 && dx[0] == 0 && dx[4] == 0, "dropout p=1 drops all");
    free(x), free(y), free(y2), free(dy), free(dx), free(m), free(m2), free(pre), free(acc);
}

/* ---- cross-entropy --------------------------------------------------------------------------- */

typedef struct {
    int n, k;
    const int32_t *lab;
    float eps;
} xent_ctx;

static void xent_fwd(void *p, const float *z, float *loss) {
    xent_ctx *c = p;
    float probs[64];
    *loss = lb_xent_forward(c->n, c->k, z, c->lab, c->eps, probs, NULL);
}

static void test_xent(void) {
    /* Hand-computed (in double): lse([1,2,3]) = 3.40760596444438, lse([5,5,1]) = 5 +
     * log(2 + e^-4) = 5.70230380575..., lse([0,0,0]) = log 3. */
    const float z[9] = {1, 2, 3, 0, 0, 0, 5, 5, 1};
    const int32_t lab[3] = {2, 0, 0};
    const double l0 = 3.40760596444438 - 3, l1 = log(3.0), l2 = 5 + log(2 + exp(-4.0)) - 5;
    float probs[9];
    int nc = -1;
    float loss = lb_xent_forward(3, 3, z, lab, 0.0f, probs, &nc);
    CHECK_NEAR(loss, (l0 + l1 + l2) / 3, 1e-6, 1e-6, "xent loss");
    CHECK(nc == 3, "ncorrect %d (ties pick the lowest index)", nc);
    CHECK_NEAR(probs[2], exp(3 - 3.40760596444438), 1e-7, 1e-6, "xent prob");
    /* Smoothing 0.1 over 3 classes: loss_i = lse - 0.9*z_y - (0.1/3)*sum z. */
    const double lse0 = 3.40760596444438, lse2 = 5 + log(2 + exp(-4.0));
    const double s0 = lse0 - 0.9 * 3 - 0.1 / 3 * 6, s1 = log(3.0),
                 s2 = lse2 - 0.9 * 5 - 0.1 / 3 * 11;
    loss = lb_xent_forward(3, 3, z, lab, 0.1f, probs, &nc);
    CHECK_NEAR(loss, (s0 + s1 + s2) / 3, 1e-6, 1e-6, "xent smoothed loss");
    /* Huge logits stay finite. */
    const float big[2] = {1000, -1000};
    const int32_t lb1[1] = {1};
    loss = lb_xent_forward(1, 2, big, lb1, 0.0f, probs, &nc);
    CHECK_NEAR(loss, 2000, 0, 1e-6, "xent large logits");

    /* Gradient: finite differences of the scalar loss, rows sum to zero. */
    const int n = 4, k = 5;
    float *zz = frand(20, 0, 2);
    const int32_t labs[4] = {0, 3, 4, 3};
    for (int e = 0; e < 2; e++) {
        xent_ctx c = {n, k, labs, e ? 0.1f : 0.0f};
        float one = 1.0f, dz[20], pr[20];
        lb_xent_forward(n, k, zz, labs, c.eps, pr, NULL);
        lb_xent_backward(n, k, pr, labs, c.eps, dz);
        fd_check(e ? "xent smoothed dlogits (fd)" : "xent dlogits (fd)", xent_fwd, &c, zz, 20, 1,
                 &one, dz);
        double rs = 0;
        for (int i = 0; i < 20; i++) rs += dz[i];
        CHECK(fabs(rs) < 1e-6, "xent grads sum to 0: %g", rs);
    }
    free(zz);
}

int main(void) {
    lb_rng_seed(&g_rng, 1234);
    lb_threads_set(2);
    test_act(0);
    test_act(1);
    test_act_large();
    test_pool_fd(0, 6, 6, 2, 2, 0);
    test_pool_fd(0, 7, 7, 2, 2, 0);
    test_pool_fd(0, 7, 7, 3, 2, 1);
    test_pool_fd(0, 6, 5, 3, 1, 1);
    test_pool_fd(1, 6, 6, 2, 2, 0);
    test_pool_fd(1, 7, 7, 3, 2, 1);
    test_pool_fd(1, 6, 5, 3, 1, 1);
    test_pool_fd(1, 7, 7, 2, 2, 0);
    test_pool_fd(0, 8, 7, 3, 3, 1);
    test_pool_fd(1, 8, 7, 3, 3, 1);
    test_pool_fd(0, 9, 6, 4, 2, 2);
    test_pool_fd(1, 9, 6, 4, 2, 2);
    test_maxpool_ties();
    test_gap();
    test_add();
    for (int act = 0; act < 3; act++) test_add_act(act);
    test_shortcut(4, 8, 2);
    test_shortcut(3, 8, 2);
    test_shortcut(4, 4, 1);
    test_dropout();
    test_xent();
    TEST_MAIN_END("test_ops");
}
