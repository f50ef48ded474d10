/* Tests of lb_quant: names, parsing and config checks; grid bounds for 2..8 bits; round-half-even;
 * forward and straight-through backward against a scalar re-implementation; finite differences
 * on the smooth surrogate; dx_acc. Not LSQ's init and floor, FIXED, NONE, threads and the SIMD
 * builds (test_quant_kinds.c), nor the comparison with PyTorch (test_torch_quant.c). */
#include "quant_ref.h"

#include <float.h>

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

int main(void) {
    const char *qe = getenv("LOWBIT_QUICK");
    int quick = qe && qe[0] && qe[0] != '0';
    test_names();
    test_bounds();
    test_rounding();
    test_elementwise();
    test_random(quick);
    test_fd();
    TEST_MAIN_END("test_quant");
}
