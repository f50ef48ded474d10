/* Tests of lb_quant: names, parsing and config checks; grid bounds for 2..8 bits; round-half-even;
 * forward and straight-through backward against a scalar re-implementation; finite differences
 * on the smooth surrogate; LSQ init, FIXED steps, NONE; dx_acc; thread-count independence; the
 * AVX2 / AVX-512 builds of the segment kernels against the baseline build, bit for bit.
 * Not the comparison with PyTorch (test_torch_quant.c). */
#include "../src/quant/quant_seg.h"
#include "lb_quant.h"
#include "lb_test.h"

#include <float.h>
#include <string.h>

/* A quantizer with its own storage (the network's arenas in real use). */
typedef struct tq {
    lb_quant q;
    float *p, *dp, *st;
} tq;

static lb_status tq_bind(tq *t, lb_qcfg cfg, int ch, size_t inner, size_t n_grad) {
    int np = lb_quant_nparam(&cfg, ch), ns = lb_quant_nstate(&cfg, ch);
    t->p = calloc((size_t)np + 1, sizeof(float));
    t->dp = calloc((size_t)np + 1, sizeof(float));
    t->st = calloc((size_t)ns + 1, sizeof(float));
    return lb_quant_bind(&t->q, &cfg, ch, inner, n_grad, t->p, t->dp, t->st);
}

static void tq_free(tq *t) {
    free(t->p);
    free(t->dp);
    free(t->st);
}

static lb_qcfg cfg_of(lb_qkind kind, int bits, int is_signed, int per_channel) {
    lb_qcfg c = {.kind = kind, .bits = bits, .is_signed = is_signed, .per_channel = per_channel};
    return c;
}

static float *fvec(size_t n) {
    return calloc(n ? n : 1, sizeof(float));
}

static void fill_normal(lb_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * lb_rng_normal(r);
}

/* ---- scalar reference -------------------------------------------------------------------------
 * The quotient is the float division (what the spec and PyTorch compute), everything after it in
 * double with libm's rint (round half to even under the default rounding mode). */
typedef struct ref_el {
    double r;   /* code round(clip(x/s)) */
    double t;   /* quotient x/s (float division) */
    int inside; /* -Qn <= t <= Qp */
} ref_el;

static ref_el ref_at(float x, float s, int qn, int qp) {
    ref_el e;
    float t = x / s;
    e.t = t;
    double c = t < -qn ? -qn : t > qp ? qp : t;
    e.r = rint(c);
    e.inside = t >= -qn && t <= qp;
    return e;
}

/* dq/ds of the STE formula: round(u) - u inside (bounds included), the bound outside. */
static double ref_dqds(ref_el e) {
    return e.inside ? e.r - e.t : e.r;
}

static size_t idx(size_t o, int c, int ch, size_t inner, size_t i) {
    return (o * (size_t)ch + (size_t)c) * inner + i;
}

/* Runs a training forward (which may initialize), then compares the forward and backward of a
 * bound uniform quantizer with the scalar reference at the steps in force; counts checks. */
static void check_against_ref(tq *t, size_t outer, const float *x, const float *dy,
                              const char *what) {
    lb_quant *q = &t->q;
    size_t n = outer * (size_t)q->ch * q->inner;
    float *y = fvec(n), *dx = fvec(n), *yr = fvec(n), *dxr = fvec(n);
    lb_quant_forward(q, outer, x, y, 1);
    for (int c = 0; c < q->nparam; c++) q->dparam[c] = NAN; /* backward overwrites, not adds */
    lb_quant_backward(q, outer, x, dy, dx, 0);
    char buf[160];
    for (int c = 0; c < q->ch; c++) {
        float s = lb_quant_step(q, c);
        double sum = 0, sabs = 0;
        for (size_t o = 0; o < outer; o++) {
            for (size_t i = 0; i < q->inner; i++) {
                size_t k = idx(o, c, q->ch, q->inner, i);
                ref_el e = ref_at(x[k], s, q->qn, q->qp);
                yr[k] = (float)(e.r * s);
                dxr[k] = e.inside ? dy[k] : 0.0f;
                double d = dy[k] * ref_dqds(e);
                sum += d;
                sabs += fabs(d);
            }
        }
        if (q->nparam > 0) {
            /* One float rounding per term (r - u is exact in float), then a double sum. */
            snprintf(buf, sizeof buf, "%s: dstep[%d]", what, c);
            CHECK_NEAR(q->dparam[c], sum * q->gscale, 2e-7 * sabs * q->gscale + 1e-30, 1e-6, buf);
        }
    }
    snprintf(buf, sizeof buf, "%s: forward exact", what);
    lbt_close(y, yr, n, 0, 0, buf);
    snprintf(buf, sizeof buf, "%s: dx exact", what);
    lbt_close(dx, dxr, n, 0, 0, buf);
    float dstep[512]; /* the step gradient, which the variants below must reproduce */
    for (int c = 0; c < q->nparam && c < 512; c++) dstep[c] = q->dparam[c];
    /* dx may alias dy (dx_acc 0) */
    float *g2 = fvec(n);
    memcpy(g2, dy, n * sizeof *g2);
    lb_quant_backward(q, outer, x, g2, g2, 0);
    snprintf(buf, sizeof buf, "%s: dx in place", what);
    lbt_close(g2, dxr, n, 0, 0, buf);
    for (int c = 0; c < q->nparam && c < 512; c++)
        CHECK(q->dparam[c] == dstep[c], "%s: dstep in place", what);
    free(g2);
    /* dx_acc adds to what is there */
    for (size_t k = 0; k < n; k++) dx[k] = 0.5f;
    lb_quant_backward(q, outer, x, dy, dx, 1);
    for (size_t k = 0; k < n; k++) dxr[k] += 0.5f;
    snprintf(buf, sizeof buf, "%s: dx_acc", what);
    lbt_close(dx, dxr, n, 0, 0, buf);
    for (int c = 0; c < q->nparam && c < 512; c++)
        CHECK(q->dparam[c] == dstep[c], "%s: dstep with dx_acc %.9g vs %.9g", what, q->dparam[c],
              dstep[c]);
    /* y may alias x */
    float *xy = fvec(n);
    memcpy(xy, x, n * sizeof *xy);
    lb_quant_forward(q, outer, xy, xy, 0);
    snprintf(buf, sizeof buf, "%s: in place", what);
    lbt_close(xy, y, n, 0, 0, buf);
    free(xy);
    free(y);
    free(dx);
    free(yr);
    free(dxr);
}

/* ---- tests ----------------------------------------------------------------------------------- */
static void test_names(void) {
    lb_qkind k = LB_Q_NONE;
    CHECK(lb_qkind_parse("lsq", &k) == LB_OK && k == LB_Q_LSQ, "parse lsq");
    CHECK(lb_qkind_parse("fixed", &k) == LB_OK && k == LB_Q_FIXED, "parse fixed");
    CHECK(lb_qkind_parse("none", &k) == LB_OK && k == LB_Q_NONE, "parse none");
    CHECK(lb_qkind_parse("LSQ2", &k) == LB_EINVAL, "unknown kind");
    CHECK(strstr(lb_error_msg(), "LSQ2") != NULL, "message names it: %s", lb_error_msg());
    CHECK(lb_qkind_parse(NULL, &k) == LB_EINVAL, "NULL");
    for (int i = 0; i < LB_Q_COUNT; i++) {
        lb_qkind back;
        CHECK(lb_qkind_parse(lb_qkind_name((lb_qkind)i), &back) == LB_OK && back == (lb_qkind)i,
              "name round trip %d", i);
    }
    CHECK(strcmp(lb_qkind_name((lb_qkind)99), "?") == 0, "unknown name");
    lb_qcfg c = cfg_of(LB_Q_LSQ, 9, 1, 0);
    CHECK(lb_qcfg_check(&c) == LB_EINVAL, "bits 9");
    CHECK(strcmp(lb_error_msg(), "bits must be 2..8, got 9") == 0, "msg: %s", lb_error_msg());
    c.bits = 1;
    CHECK(lb_qcfg_check(&c) == LB_EINVAL, "bits 1");
    c.kind = LB_Q_FIXED;
    CHECK(lb_qcfg_check(&c) == LB_EINVAL, "fixed bits 1");
    c.kind = LB_Q_NONE;
    CHECK(lb_qcfg_check(&c) == LB_OK, "none ignores bits");
    c.kind = (lb_qkind)7;
    CHECK(lb_qcfg_check(&c) == LB_EINVAL, "bad kind");
    for (int b = 2; b <= 8; b++) {
        c = cfg_of(LB_Q_LSQ, b, 0, 0);
        CHECK(lb_qcfg_check(&c) == LB_OK, "bits %d ok", b);
    }
    /* counts */
    c = cfg_of(LB_Q_LSQ, 4, 1, 1);
    CHECK(lb_quant_nparam(&c, 16) == 16 && lb_quant_nstate(&c, 16) == 17, "lsq per-channel");
    c.per_channel = 0;
    CHECK(lb_quant_nparam(&c, 16) == 1 && lb_quant_nstate(&c, 16) == 2, "lsq per-tensor");
    c = cfg_of(LB_Q_FIXED, 4, 1, 1);
    CHECK(lb_quant_nparam(&c, 16) == 0 && lb_quant_nstate(&c, 16) == 16, "fixed per-channel");
    c = cfg_of(LB_Q_NONE, 0, 0, 1);
    CHECK(lb_quant_nparam(&c, 16) == 0 && lb_quant_nstate(&c, 16) == 0, "none");
    /* bind errors */
    lb_quant q;
    float p[4], dp[4], st[4];
    c = cfg_of(LB_Q_LSQ, 4, 1, 0);
    CHECK(lb_quant_bind(&q, &c, 1, 10, 0, p, dp, st) == LB_EINVAL, "lsq n_grad 0");
    CHECK(lb_quant_bind(&q, &c, 0, 10, 10, p, dp, st) == LB_EINVAL, "ch 0");
    CHECK(lb_quant_bind(&q, &c, 1, 10, 10, NULL, NULL, st) == LB_EINVAL, "no param storage");
    CHECK(lb_quant_bind(&q, &c, 1, 10, 10, p, dp, NULL) == LB_EINVAL, "no state storage");
    c.bits = 12;
    CHECK(lb_quant_bind(&q, &c, 1, 10, 10, p, dp, st) == LB_EINVAL, "bind checks bits");
    c = cfg_of(LB_Q_NONE, 0, 0, 0);
    CHECK(lb_quant_bind(&q, &c, 3, 10, 0, NULL, NULL, NULL) == LB_OK, "none without storage");
    CHECK(lb_quant_step(&q, 0) == 0.0f, "none step 0");
    CHECK(lb_quant_set_bits(&q, 4) == LB_EINVAL, "none has no bits");
    /* defaults after bind; per-tensor folds channels */
    c = cfg_of(LB_Q_LSQ, 4, 1, 0);
    dp[0] = 5;
    CHECK(lb_quant_bind(&q, &c, 8, 10, 80, p, dp, st) == LB_OK, "bind lsq");
    CHECK(q.ch == 1 && q.inner == 80 && q.nparam == 1 && q.nstate == 2, "folded %d %zu", q.ch,
          q.inner);
    CHECK(p[0] == 1.0f && st[0] == 0.0f && dp[0] == 0.0f, "defaults");
    CHECK(q.qn == 8 && q.qp == 7 && fabsf(q.gscale - (float)(1 / sqrt(80.0 * 7))) < 1e-9f,
          "bounds and gscale");
    CHECK(q.reg_weight == 0.0f && lb_quant_reg(&q, 1, p, dp) == 0.0f, "no reg");
    CHECK(lb_quant_set_bits(&q, 2) == LB_OK && q.qn == 2 && q.qp == 1 &&
              fabsf(q.gscale - (float)(1 / sqrt(80.0))) < 1e-9f && q.cfg.bits == 2,
          "set_bits 2");
    CHECK(lb_quant_set_bits(&q, 9) == LB_EINVAL && q.cfg.bits == 2, "set_bits 9 refused");
}

/* Codes stay in [-Qn, Qp] and reach both ends, every code in between is produced, for 2..8 bits
 * signed and unsigned. */
static void test_bounds(void) {
    for (int b = 2; b <= 8; b++) {
        for (int sg = 0; sg <= 1; sg++) {
            tq t;
            lb_status st = tq_bind(&t, cfg_of(LB_Q_LSQ, b, sg, 0), 1, 4001, 4001);
            CHECK(st == LB_OK, "bind %d %d", b, sg);
            int qn = sg ? 1 << (b - 1) : 0, qp = sg ? (1 << (b - 1)) - 1 : (1 << b) - 1;
            CHECK(t.q.qn == qn && t.q.qp == qp, "b %d signed %d: qn %d qp %d", b, sg, t.q.qn,
                  t.q.qp);
            t.p[0] = 0.125f;
            t.st[0] = 1;
            float *x = fvec(4001), *y = fvec(4001);
            /* a ramp over [-1.5 * 2^b, 1.5 * 2^b] steps */
            for (int i = 0; i < 4001; i++) x[i] = 0.125f * 3.0f * (1 << b) * (i - 2000) / 4000.0f;
            lb_quant_forward(&t.q, 1, x, y, 1);
            int seen[600] = {0}, ok = 1;
            for (int i = 0; i < 4001; i++) {
                float code = y[i] / 0.125f;
                ok &= code >= -qn && code <= qp && code == rintf(code);
                if (code >= -qn && code <= qp) seen[(int)code + 256] = 1;
            }
            int all = 1;
            for (int k = -qn; k <= qp; k++) all &= seen[k + 256];
            CHECK(ok && all, "b %d signed %d: codes in range and all reached", b, sg);
            free(x);
            free(y);
            tq_free(&t);
        }
    }
}

/* Ties round to even, as torch.round; the kernel agrees with rintf over a dense grid of
 * quotients and the neighbours of every tie. */
static void test_rounding(void) {
    tq t;
    tq_bind(&t, cfg_of(LB_Q_LSQ, 8, 1, 0), 1, 1, 1);
    t.st[0] = 1;
    t.p[0] = 1.0f;
    float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.5f, 3.5f, -3.5f};
    float want[] = {0, 2, 2, -0.0f, -2, -2, 126, -128, 4, -4};
    for (size_t i = 0; i < sizeof ties / sizeof *ties; i++) {
        float y;
        lb_quant_forward(&t.q, 1, &ties[i], &y, 0);
        CHECK(y == want[i] && signbit(y) == signbit(want[i]), "tie %g -> %g", ties[i], y);
    }
    float y, m03 = -0.3f;
    lb_quant_forward(&t.q, 1, &m03, &y, 0);
    CHECK(y == 0 && signbit(y), "-0.3 rounds to -0 like rintf");
    tq_free(&t);

    size_t n = 0, cap = 300000;
    float *x = fvec(cap), *yk = fvec(cap);
    for (int k = -140 * 64; k <= 260 * 64; k++) x[n++] = k / 64.0f + 1.0f / 128;
    for (int k = -140; k <= 260; k++) {
        float tie = k + 0.5f;
        x[n++] = nextafterf(tie, -INFINITY);
        x[n++] = tie;
        x[n++] = nextafterf(tie, INFINITY);
    }
    for (int b = 2; b <= 8; b += 6) {
        for (int sg = 0; sg <= 1; sg++) {
            tq_bind(&t, cfg_of(LB_Q_FIXED, b, sg, 0), 1, n, n);
            t.st[0] = 1.0f; /* eval keeps the stored step */
            lb_quant_forward(&t.q, 1, x, yk, 0);
            int ok = 1;
            for (size_t i = 0; i < n && ok; i++) {
                float c = x[i] < -t.q.qn ? (float)-t.q.qn : x[i] > t.q.qp ? (float)t.q.qp : x[i];
                float r = rintf(c);
                ok &= yk[i] == r && signbit(yk[i]) == signbit(r);
                if (!ok) fprintf(stderr, "x %.9g: %.9g vs rintf %.9g\n", x[i], yk[i], r);
            }
            CHECK(ok, "b %d signed %d: agrees with rintf on %zu quotients", b, sg, n);
            tq_free(&t);
        }
    }
    free(x);
    free(yk);

    /* The quotient is a true division, as in PyTorch: x*(1/s) differs from x/s by an ulp often
     * enough to round differently next to a tie. Find such x for a few steps and check. */
    const float steps[] = {0.1f, 0.3f, 0.7f, 0.013f};
    int found = 0, ok = 1;
    for (int si = 0; si < 4; si++) {
        float s = steps[si], inv = 1.0f / s;
        tq_bind(&t, cfg_of(LB_Q_LSQ, 8, 0, 0), 1, 1, 1);
        t.p[0] = s;
        t.st[0] = 1;
        for (int k = 0; k < 255; k++) {
            float xv = (k + 0.5f) * s;
            for (int d = 0; d < 4; d++) xv = nextafterf(xv, -INFINITY);
            for (int d = 0; d < 9; d++, xv = nextafterf(xv, INFINITY)) {
                float rd = rintf(xv / s), rm = rintf(xv * inv);
                if (rd == rm) continue;
                float yv;
                lb_quant_forward(&t.q, 1, &xv, &yv, 0);
                ok &= yv == rd * s;
                found++;
            }
        }
        tq_free(&t);
    }
    CHECK(found >= 5 && ok, "division, not reciprocal: %d cases", found);
}

/* Element by element: a one-element quantizer and dy = 1 give dq/dv and g*dq/ds of that element
 * alone, at the bounds exactly, just inside and outside, at ties, zero and far out. */
static void test_elementwise(void) {
    const int bits[] = {2, 4, 8};
    for (int bi = 0; bi < 3; bi++) {
        for (int sg = 0; sg <= 1; sg++) {
            tq t;
            tq_bind(&t, cfg_of(LB_Q_LSQ, bits[bi], sg, 0), 1, 1, 3);
            float s = 0.25f; /* a power of two: x = s*u is exact, so u lands where intended */
            t.p[0] = s;
            t.st[0] = 1;
            float lo = (float)-t.q.qn, hi = (float)t.q.qp;
            float us[] = {lo,
                          hi,
                          nextafterf(lo, -INFINITY),
                          nextafterf(hi, INFINITY),
                          nextafterf(lo, INFINITY),
                          nextafterf(hi, -INFINITY),
                          lo - 3,
                          hi + 7,
                          0.0f,
                          0.5f,
                          1.5f,
                          hi - 0.5f,
                          0.3f,
                          -0.3f,
                          hi - 0.7f,
                          lo + 0.2f,
                          -1000.0f,
                          1000.0f};
            int ok = 1;
            for (size_t i = 0; i < sizeof us / sizeof *us; i++) {
                for (int acc = 0; acc <= 1; acc++) {
                    float x = us[i] * s, y, dy = 1.0f, dx0 = acc ? 2.0f : -9.0f, dx = dx0;
                    lb_quant_forward(&t.q, 1, &x, &y, 1);
                    t.dp[0] = 123;
                    lb_quant_backward(&t.q, 1, &x, &dy, &dx, acc);
                    if (acc) dx -= dx0;
                    ref_el e = ref_at(x, s, t.q.qn, t.q.qp);
                    double ds = ref_dqds(e) * t.q.gscale;
                    int good = y == (float)(e.r * s) && dx == (e.inside ? 1.0f : 0.0f) &&
                               fabs(t.dp[0] - ds) <= 1e-7 * fabs(ds) + 1e-12;
                    /* (e.t, not us[i]: a denormal u*s may flush to -0, which is inside) */
                    if (e.t == lo || e.t == hi) good &= dx == 1.0f && t.dp[0] == 0.0f;
                    if (e.t > hi) good &= dx == 0.0f && t.dp[0] == (float)(hi * t.q.gscale);
                    if (e.t < lo) good &= dx == 0.0f && t.dp[0] == (float)(lo * t.q.gscale);
                    if (!good)
                        fprintf(stderr, "b %d s %d u %.9g acc %d: y %g dx %g ds %.9g want %.9g\n",
                                bits[bi], sg, us[i], acc, y, dx, t.dp[0], ds);
                    ok &= good;
                }
            }
            CHECK(ok, "elementwise b %d signed %d", bits[bi], sg);
            tq_free(&t);
        }
    }
}

/* Random tensors per-tensor and per-channel, small and large (threaded path, several chunk
 * layouts), against the scalar reference. */
static void test_random(int quick) {
    lb_rng r;
    lb_rng_seed(&r, 7);
    struct {
        int ch, per_channel, sg, bits;
        size_t outer, inner;
    } cases[] = {
        {1, 0, 1, 4, 1, 1152},  {16, 1, 1, 4, 1, 72},   {1, 0, 0, 4, 8, 576},
        {1, 0, 0, 2, 64, 2048}, {4, 1, 0, 8, 16, 4096}, {100, 1, 1, 3, 8, 4096},
        {300, 1, 1, 5, 2, 100}, {8, 0, 1, 6, 40, 1000},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        if (quick && cases[ci].outer * cases[ci].inner * (size_t)cases[ci].ch > 1000000) continue;
        tq t;
        lb_qcfg c = cfg_of(LB_Q_LSQ, cases[ci].bits, cases[ci].sg, cases[ci].per_channel);
        size_t per = cases[ci].inner * (cases[ci].per_channel ? 1 : (size_t)cases[ci].ch);
        tq_bind(&t, c, cases[ci].ch, cases[ci].inner, per);
        size_t n = cases[ci].outer * (size_t)cases[ci].ch * cases[ci].inner;
        float *x = fvec(n), *dy = fvec(n);
        fill_normal(&r, x, n, 0.7f);
        fill_normal(&r, dy, n, 1.0f);
        if (!cases[ci].sg)
            for (size_t k = 0; k < n; k += 3) x[k] = x[k] < 0 ? 0 : x[k]; /* ReLU-like zeros */
        char what[96];
        snprintf(what, sizeof what, "lsq case %zu", ci);
        check_against_ref(&t, cases[ci].outer, x, dy, what);
        free(x);
        free(dy);
        tq_free(&t);
    }
}

/* Finite differences. The fake-quant forward is piecewise constant in v and in s, so a finite
 * difference of the real forward is 0 away from rounding jumps (checked below) and says nothing
 * about the straight-through gradient; comparing it with the STE gradient would be dishonest.
 * What the STE gradient IS the exact derivative of: the surrogate in which round(u) is replaced
 * by u + d, d = round(u0) - u0 frozen at the evaluation point (the identity with round's
 * straight-through slope, the clip kept): qh(v, s) = s * (clip(v/s) + d), equal to q at (v0, s0).
 * So: (1) the kernel's forward equals qh at the point, (2) the real forward is locally constant,
 * (3) central differences of L = sum_i w_i qh_i in double w.r.t. each v_i and each s_c equal the
 * kernel's dx and dstep / gscale. Points within 1e-2 of a clip bound or of a .5 boundary are
 * redrawn so no stencil straddles one. Element-by-element checks of the formula are in
 * test_elementwise and check_against_ref. */
static double qh(double v, double s, double d, int qn, int qp) {
    double u = v / s;
    u = u < -qn ? -qn : u > qp ? qp : u;
    return s * (u + d);
}

static int near_jump(float x, float s, int qn, int qp) {
    double u = (double)(x / s);
    double f = u - floor(u);
    return fabs(f - 0.5) < 1e-2 || fabs(u + qn) < 1e-2 || fabs(u - qp) < 1e-2;
}

static void test_fd(void) {
    lb_rng r;
    lb_rng_seed(&r, 11);
    for (int pc = 0; pc <= 1; pc++) {
        for (int sg = 0; sg <= 1; sg++) {
            int ch = 3, bits = sg ? 3 : 4;
            size_t outer = 2, inner = 40, n = outer * (size_t)ch * inner;
            tq t;
            tq_bind(&t, cfg_of(LB_Q_LSQ, bits, sg, pc), ch, inner, pc ? inner : inner * ch);
            float steps[3] = {0.1f, 0.23f, 0.05f};
            for (int c = 0; c < t.q.ch; c++) t.p[c] = steps[c];
            t.st[0] = 1;
            int qn = t.q.qn, qp = t.q.qp, nch = t.q.ch;
            size_t inr = t.q.inner;
            float *x = fvec(n), *w = fvec(n), *y = fvec(n), *dx = fvec(n), *y2 = fvec(n);
            double *d = calloc(n, sizeof *d);
            for (size_t o = 0; o < outer; o++)
                for (int c = 0; c < nch; c++)
                    for (size_t i = 0; i < inr; i++) {
                        size_t k = idx(o, c, nch, inr, i);
                        float s = t.p[c];
                        do x[k] = s * (qp + qn + 6) * 0.5f * lb_rng_normal(&r);
                        while (near_jump(x[k], s, qn, qp));
                        w[k] = lb_rng_normal(&r);
                        ref_el e = ref_at(x[k], s, qn, qp);
                        d[k] = e.inside ? e.r - e.t : 0.0;
                    }
            lb_quant_forward(&t.q, outer, x, y, 1);
            lb_quant_backward(&t.q, outer, x, w, dx, 0);
            int at_point = 1, constant = 1, dv_ok = 1;
            double worst_dv = 0;
            for (size_t o = 0; o < outer; o++)
                for (int c = 0; c < nch; c++)
                    for (size_t i = 0; i < inr; i++) {
                        size_t k = idx(o, c, nch, inr, i);
                        double s = t.p[c];
                        at_point &= fabs(y[k] - qh(x[k], s, d[k], qn, qp)) <= 1e-6 * s;
                        double h = 1e-3 * s;
                        double fd =
                            w[k] * (qh(x[k] + h, s, d[k], qn, qp) - qh(x[k] - h, s, d[k], qn, qp)) /
                            (2 * h);
                        double err = fabs(fd - dx[k]);
                        worst_dv = err > worst_dv ? err : worst_dv;
                        dv_ok &= err <= 1e-6 * (1 + fabs(w[k]));
                    }
            /* (2): the real forward does not move under a perturbation of 1e-3 steps */
            for (int sign = -1; sign <= 1; sign += 2) {
                float *xp = fvec(n);
                for (size_t k = 0; k < n; k++) {
                    size_t c = (k / inr) % (size_t)nch;
                    xp[k] = x[k] + sign * 1e-3f * t.p[c];
                }
                lb_quant_forward(&t.q, outer, xp, y2, 0);
                for (size_t k = 0; k < n; k++) constant &= y2[k] == y[k];
                free(xp);
            }
            CHECK(at_point, "pc %d sg %d: forward equals the surrogate at the point", pc, sg);
            CHECK(constant, "pc %d sg %d: real forward locally constant", pc, sg);
            CHECK(dv_ok, "pc %d sg %d: FD dq/dv vs dx, worst %g", pc, sg, worst_dv);
            for (int c = 0; c < nch; c++) {
                double s = t.p[c], h = 1e-6 * s, lp = 0, lm = 0, scale = 0;
                for (size_t o = 0; o < outer; o++)
                    for (size_t i = 0; i < inr; i++) {
                        size_t k = idx(o, c, nch, inr, i);
                        lp += w[k] * qh(x[k], s + h, d[k], qn, qp);
                        lm += w[k] * qh(x[k], s - h, d[k], qn, qp);
                        scale += fabs(w[k]) * (qp + qn);
                    }
                double fd = (lp - lm) / (2 * h), got = t.dp[c] / t.q.gscale;
                CHECK(fabs(fd - got) <= 1e-6 * scale, "pc %d sg %d c %d: FD dL/ds %.9g vs %.9g", pc,
                      sg, c, fd, got);
            }
            free(x);
            free(w);
            free(y);
            free(dx);
            free(y2);
            free(d);
            tq_free(&t);
        }
    }
}

/* LSQ init: s = 2*mean|v|/sqrt(Qp) per channel on the first training forward only; eval never
 * initializes; all-zero input clamps to 1e-8; reset re-arms it. */
static void test_lsq_init(int quick) {
    lb_rng r;
    lb_rng_seed(&r, 3);
    /* per-tensor unsigned activations and per-channel signed weights; the large ones take the
     * chunked (several partials per channel) path */
    struct {
        int pc, ch;
        size_t outer, inner;
    } cases[] = {{0, 5, 6, 37}, {1, 5, 1, 37}, {0, 1, 64, 4096}, {1, 20, 5, 4096}};
    for (size_t ci = 0; ci < 4; ci++) {
        if (quick && ci >= 2) continue;
        int pc = cases[ci].pc, ch = cases[ci].ch, sg = pc;
        size_t outer = cases[ci].outer, inner = cases[ci].inner, n = outer * (size_t)ch * inner;
        tq t;
        tq_bind(&t, cfg_of(LB_Q_LSQ, 4, sg, pc), ch, inner, pc ? inner : (size_t)ch * inner);
        float *x = fvec(n), *y = fvec(n);
        fill_normal(&r, x, n, 0.3f + pc);
        lb_quant_forward(&t.q, outer, x, y, 0);
        CHECK(t.st[0] == 0 && t.p[0] == 1.0f, "eval does not initialize");
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.st[0] == 1.0f, "flag set");
        int nch = t.q.ch;
        size_t inr = t.q.inner;
        for (int c = 0; c < nch; c++) {
            double sum = 0;
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < inr; i++) sum += fabs(x[idx(o, c, nch, inr, i)]);
            double want = 2 * sum / (double)(outer * inr) / sqrt((double)t.q.qp);
            CHECK_NEAR(t.p[c], want, 0, 1e-6, pc ? "per-channel init" : "per-tensor init");
        }
        float s0 = t.p[0];
        for (size_t k = 0; k < n; k++) x[k] *= 3;
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.p[0] == s0, "no second init");
        lb_quant_reset(&t.q);
        CHECK(t.p[0] == 1.0f && t.st[0] == 0, "reset");
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK_NEAR(t.p[0], 3 * s0, 0, 1e-6, "re-initialized after reset");
        lb_quant_reset(&t.q);
        memset(x, 0, n * sizeof *x);
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.p[0] == 1e-8f, "all-zero init clamps to 1e-8: %g", t.p[0]);
        free(x);
        free(y);
        tq_free(&t);
    }
}

/* LSQ's projection: nothing before the init; afterwards every step stays >= LB_LSQ_FLOOR times
 * the step it was initialized with (a negative, zero or NaN step lands exactly on the floor), a
 * step above the floor is untouched (bit for bit), and the count of channels at the floor is
 * returned. */
static void test_lsq_floor(void) {
    tq t;
    size_t inner = 50;
    tq_bind(&t, cfg_of(LB_Q_LSQ, 4, 1, 1), 4, inner, inner);
    float x[200], y[200];
    for (int k = 0; k < 200; k++) x[k] = (float)((k * 37) % 101 - 50) * (0.01f + 0.01f * (k / 50));
    t.p[0] = -3.0f;
    CHECK(lb_quant_project(&t.q) == 0 && t.p[0] == -3.0f, "no projection before the init");
    lb_quant_forward(&t.q, 1, x, y, 1);
    float s0[4];
    for (int c = 0; c < 4; c++) {
        s0[c] = t.p[c];
        CHECK(t.st[1 + c] == s0[c] && s0[c] > 0, "initial step %d recorded", c);
    }
    CHECK(lb_quant_project(&t.q) == 0, "fresh steps are inside");
    t.p[0] = -3.88f;       /* the issue-10 collapse: a negative step */
    t.p[1] = 0.0f;         /* zero */
    t.p[2] = NAN;          /* a broken update */
    t.p[3] = s0[3] * 0.5f; /* lower, but above the floor */
    CHECK(lb_quant_project(&t.q) == 3, "three channels at the floor");
    for (int c = 0; c < 3; c++)
        CHECK(t.p[c] == LB_LSQ_FLOOR * s0[c], "channel %d on its floor: %g", c, t.p[c]);
    CHECK(t.p[3] == s0[3] * 0.5f, "a valid step is untouched");
    CHECK(lb_quant_project(&t.q) == 3, "a step sitting on its floor still counts");
    /* a step at its floor quantizes with a positive grid: codes keep the sign of the input */
    lb_quant_forward(&t.q, 1, x, y, 0);
    int sign_ok = 1;
    for (size_t k = 0; k < inner; k++)
        sign_ok &= !(x[k] > 0 && y[k] < 0) && !(x[k] < 0 && y[k] > 0);
    CHECK(sign_ok, "grid keeps the sign at the floor");
    /* the fixed and none kinds have nothing to project */
    tq f;
    tq_bind(&f, cfg_of(LB_Q_FIXED, 4, 1, 0), 1, inner, inner);
    CHECK(lb_quant_project(&f.q) == 0, "fixed: no projection");
    tq_free(&f);
    tq_free(&t);
}

/* FIXED: step = max|v|/Qp per channel on every training forward, kept by eval; the largest
 * element stays inside the range (keeps its gradient); no parameters. */
static void test_fixed(void) {
    lb_rng r;
    lb_rng_seed(&r, 5);
    for (int pc = 0; pc <= 1; pc++) {
        for (int sg = 0; sg <= 1; sg++) {
            for (int bits = 2; bits <= 8; bits += 3) {
                int ch = 4;
                size_t outer = 3, inner = 50, n = outer * (size_t)ch * inner;
                tq t;
                tq_bind(&t, cfg_of(LB_Q_FIXED, bits, sg, pc), ch, inner, 1);
                CHECK(t.q.nparam == 0 && t.q.nstate == t.q.ch && t.st[0] == 1.0f,
                      "fixed counts and default");
                float *x = fvec(n), *y = fvec(n), *dy = fvec(n), *dx = fvec(n);
                fill_normal(&r, x, n, 1.0f + (float)bits);
                fill_normal(&r, dy, n, 1.0f);
                lb_quant_forward(&t.q, outer, x, y, 1);
                int nch = t.q.ch, ok = 1;
                size_t inr = t.q.inner;
                lb_quant_backward(&t.q, outer, x, dy, dx, 0);
                for (int c = 0; c < nch; c++) {
                    float m = 0;
                    size_t km = 0;
                    for (size_t o = 0; o < outer; o++)
                        for (size_t i = 0; i < inr; i++) {
                            size_t k = idx(o, c, nch, inr, i);
                            if (fabsf(x[k]) > m) m = fabsf(x[k]), km = k;
                        }
                    float s = lb_quant_step(&t.q, c);
                    ok &= fabs(s - (double)m / t.q.qp) <= 2.4e-7 * s && m / s <= t.q.qp;
                    /* a positive max keeps its gradient (a negative one is clipped unsigned) */
                    if (x[km] > 0) ok &= dx[km] == dy[km];
                }
                CHECK(ok, "pc %d sg %d b %d: step = max/Qp, max inside", pc, sg, bits);
                char what[64];
                snprintf(what, sizeof what, "fixed pc %d sg %d b %d", pc, sg, bits);
                check_against_ref(&t, outer, x, dy, what);
                float s0 = t.st[0];
                for (size_t k = 0; k < n; k++) x[k] *= 2;
                lb_quant_forward(&t.q, outer, x, y, 0);
                CHECK(t.st[0] == s0, "eval keeps the step");
                lb_quant_forward(&t.q, outer, x, y, 1);
                CHECK(t.st[0] == 2 * s0, "training recomputes: %g vs %g", t.st[0], 2 * s0);
                memset(x, 0, n * sizeof *x);
                lb_quant_forward(&t.q, outer, x, y, 1);
                CHECK(t.st[0] == 1e-8f, "all-zero step 1e-8");
                free(x);
                free(y);
                free(dy);
                free(dx);
                tq_free(&t);
            }
        }
    }
}

static void test_none(void) {
    tq t;
    CHECK(tq_bind(&t, cfg_of(LB_Q_NONE, 0, 0, 1), 3, 5, 0) == LB_OK, "bind none");
    float x[30], y[30], dy[30], dx[30];
    for (int i = 0; i < 30; i++) x[i] = 0.37f * i - 3, dy[i] = 1.0f + i, dx[i] = 2;
    lb_quant_forward(&t.q, 2, x, y, 1);
    CHECK(memcmp(x, y, sizeof x) == 0, "identity");
    lb_quant_backward(&t.q, 2, x, dy, dx, 1);
    int ok = 1;
    for (int i = 0; i < 30; i++) ok &= dx[i] == 3.0f + i;
    CHECK(ok, "none dx_acc");
    lb_quant_backward(&t.q, 2, x, dy, dx, 0);
    CHECK(memcmp(dx, dy, sizeof dx) == 0, "none dx");
    CHECK(lb_quant_step(&t.q, 0) == 0.0f, "none step");
    tq_free(&t);
}

/* Bitwise identical results for 1, 2 and 3 threads: chunks depend on the shape only. */
static void test_threads(int quick) {
    lb_rng r;
    lb_rng_seed(&r, 9);
    struct {
        int ch, pc;
        size_t outer, inner;
    } cases[] = {{1, 0, 64, 4096}, {100, 1, 8, 4096}, {300, 1, 1, 512}};
    for (size_t ci = 0; ci < 3; ci++) {
        size_t outer = quick ? cases[ci].outer / 2 + 1 : cases[ci].outer;
        size_t n = outer * (size_t)cases[ci].ch * cases[ci].inner;
        float *x = fvec(n), *dy = fvec(n), *y = fvec(n), *dx = fvec(n);
        fill_normal(&r, x, n, 1);
        fill_normal(&r, dy, n, 1);
        float base[300][3];
        int same = 1;
        for (int th = 1; th <= 3; th++) {
            lb_threads_set(th);
            tq t;
            tq_bind(&t, cfg_of(LB_Q_LSQ, 4, 1, cases[ci].pc), cases[ci].ch, cases[ci].inner,
                    cases[ci].inner);
            tq f;
            tq_bind(&f, cfg_of(LB_Q_FIXED, 4, 1, cases[ci].pc), cases[ci].ch, cases[ci].inner, 1);
            lb_quant_forward(&t.q, outer, x, y, 1);
            lb_quant_backward(&t.q, outer, x, dy, dx, 0);
            lb_quant_forward(&f.q, outer, x, y, 1);
            for (int c = 0; c < t.q.ch; c++) {
                float v[3] = {t.p[c], t.dp[c], f.st[c]};
                if (th == 1) memcpy(base[c], v, sizeof v);
                same &= memcmp(base[c], v, sizeof v) == 0;
            }
            tq_free(&t);
            tq_free(&f);
        }
        lb_threads_set(1);
        CHECK(same, "case %zu: init, dstep and fixed step identical for 1..3 threads", ci);
        free(x);
        free(dy);
        free(y);
        free(dx);
    }
}

/* The ISA builds of the segment kernels (only those this CPU runs) give the baseline's bits for
 * every element, on a mix of in-range, bound, tie, signed-zero and far-out values and lengths
 * that leave every vector tail; the double step sum may differ in lane order only. */
static void test_isa_tables(void) {
    const lb_qseg_kernels *tabs[2] = {NULL, NULL};
    const char *names[2] = {"avx2", "avx512"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tabs[0] = &lb_qseg_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        tabs[1] = &lb_qseg_avx512;
    const lb_qseg_kernels *b = &lb_qseg_base;
    enum { N = 1000 };
    float *x = malloc(N * sizeof *x), *dy = malloc(N * sizeof *dy);
    float *y0 = malloc(N * sizeof *y0), *y1 = malloc(N * sizeof *y1);
    uint64_t st = 7;
    for (int i = 0; i < N; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        const float u = (float)((st >> 40) % 100000) / 100000.0f;
        const int kind = (int)((st >> 20) % 8);
        x[i] = kind == 0   ? 0.25f * (float)((int)((st >> 30) % 40) - 20) /* ties at s = 0.5 */
               : kind == 1 ? -0.0f
               : kind == 2 ? 1e6f * (u - 0.5f)
                           : 8.0f * u - 4.0f;
        dy[i] = (float)((st >> 10) % 2001) / 1000.0f - 1.0f;
    }
    const int lens[] = {1, 7, 15, 16, 17, 63, 64, 65, 999, 1000};
    for (int t = 0; t < 2; t++) {
        if (!tabs[t]) continue;
        const lb_qseg_kernels *k = tabs[t];
        int same_f = 1, same_b = 1, same_ds = 1, same_stat = 1, sum_ok = 1;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const size_t n = (size_t)lens[li];
            for (int sg = 0; sg < 2; sg++) {
                const float s = sg ? 0.5f : 0.37f, lo = sg ? -8.0f : 0.0f, hi = sg ? 7.0f : 15.0f;
                b->forward(x, y0, n, s, lo, hi);
                k->forward(x, y1, n, s, lo, hi);
                same_f &= memcmp(y0, y1, n * sizeof *y0) == 0;
                for (int acc = 0; acc < 2; acc++) {
                    for (size_t i = 0; i < n; i++) y0[i] = y1[i] = dy[(i + 3) % N];
                    b->backward(x, dy, y0, n, s, lo, hi, acc);
                    k->backward(x, dy, y1, n, s, lo, hi, acc);
                    same_b &= memcmp(y0, y1, n * sizeof *y0) == 0;
                    for (size_t i = 0; i < n; i++) y0[i] = y1[i] = dy[(i + 3) % N];
                    const double s0 = b->backward_ds(x, dy, y0, n, s, lo, hi, acc);
                    const double s1 = k->backward_ds(x, dy, y1, n, s, lo, hi, acc);
                    same_ds &= memcmp(y0, y1, n * sizeof *y0) == 0;
                    double mag = 0;
                    for (size_t i = 0; i < n; i++) mag += fabs((double)dy[i]) * 16.0;
                    sum_ok &= fabs(s0 - s1) <= 1e-12 * (mag + 1.0);
                }
            }
            same_stat &= b->absmax(x, n) == k->absmax(x, n);
            same_stat &= fabs(b->abssum(x, n) - k->abssum(x, n)) <= 1e-9 * b->abssum(x, n);
        }
        CHECK(same_f, "%s forward differs from the baseline", names[t]);
        CHECK(same_b, "%s backward differs from the baseline", names[t]);
        CHECK(same_ds, "%s backward_ds dx differs from the baseline", names[t]);
        CHECK(sum_ok, "%s step sum differs from the baseline beyond rounding", names[t]);
        CHECK(same_stat, "%s absmax/abssum differ from the baseline", names[t]);
    }
    /* the dispatcher picks one of the three */
    const lb_qseg_kernels *g = lb_qseg_get();
    CHECK(g == &lb_qseg_base || g == &lb_qseg_avx2 || g == &lb_qseg_avx512, "lb_qseg_get");
    free(x), free(dy), free(y0), free(y1);
}

int main(void) {
    const char *qe = getenv("LOWBIT_QUICK");
    int quick = qe && qe[0] && qe[0] != '0';
    test_names();
    test_bounds();
    test_rounding();
    test_elementwise();
    test_random(quick);
    test_fd();
    test_lsq_init(quick);
    test_lsq_floor();
    test_fixed();
    test_none();
    test_threads(quick);
    test_isa_tables();
    TEST_MAIN_END("test_quant");
}
