/* `lsq --po2` (methods.md 1b, lb_quant.h): the exponent rounding against a brute-force search,
 * the forward and backward against plain LSQ run at s_eff, finite differences of the
 * straight-through surrogate for the step gradient, the errors (--po2 on kinds without a learned
 * scale), the checkpoint fields, and which integer requantizations become pure shifts. The
 * PyTorch comparison is test_torch_po2.c. */
#include "../src/train/train_internal.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2^E with E the integer nearest to log2 s, by long double logs (no ties: sqrt(2) is irrational).
 */
static float brute(float s) {
    long double l = log2l((long double)s);
    long double e0 = floorl(l);
    return (l - e0 < e0 + 1 - l) ? ldexpf(1, (int)e0) : ldexpf(1, (int)e0 + 1);
}

static void test_exponent(void) {
    lb_rng r;
    lb_rng_seed(&r, 3);
    long bad = 0;
    for (int i = 0; i < 200000; i++) {
        float s = ldexpf(1.0f + lb_rng_uniform(&r), (int)(lb_rng_uniform(&r) * 60) - 40);
        bad += lb_po2_step(s) != brute(s);
    }
    CHECK(bad == 0, "po2 exponent: %ld of 200000 random steps differ from the brute-force nearest",
          bad);
    /* the boundary sqrt(1/2) * 2^k from both sides, and powers of two themselves */
    for (int k = -30; k <= 30; k += 5) {
        float mid = ldexpf((float)sqrt(0.5), k), lo = nextafterf(mid, 0),
              hi = nextafterf(mid, INFINITY);
        float a = lb_po2_step(lo), b = lb_po2_step(hi), c = lb_po2_step(ldexpf(1, k));
        int want_mid = (double)mid > ldexp(sqrt(0.5), k) ? k : k - 1; /* mid is a rounded float */
        CHECK(a == ldexpf(1, k - 1) && b == ldexpf(1, k) && c == ldexpf(1, k) &&
                  lb_po2_step(mid) == ldexpf(1, want_mid),
              "po2 boundary at 2^%d: %g %g %g", k, (double)a, (double)b, (double)c);
    }
    CHECK(lb_po2_step(0) == 0 && lb_po2_step(-1) == -1 && isnan(lb_po2_step(NAN)),
          "po2 of a non-positive or NaN step is returned as it is");
}

/* forward, dx and dparam equal plain LSQ at s_eff, with dparam times s_eff/s; and a central
 * difference of the surrogate qh(v, s) = s r (clip(v/(s r)) + d) (r = s_eff/s and the rounding
 * offsets d frozen at the point: what the straight-through gradient is the derivative of). */
static void test_vs_lsq_and_fd(void) {
    enum { CH = 4, OUTER = 3, INNER = 25, N = CH * OUTER * INNER };
    const float steps[CH] = {0.1f, 0.3f, 0.72f, 0.05f};
    lb_rng r;
    lb_rng_seed(&r, 5);
    for (int sg = 0; sg <= 1; sg++) {
        float p[CH], dp[CH], st[1 + CH], p2[CH], dp2[CH], st2[1 + CH];
        lb_qcfg cfg = {.kind = LB_Q_LSQ, .bits = 4, .is_signed = sg, .per_channel = 1, .po2 = 1};
        lb_qcfg plain = cfg;
        plain.po2 = 0;
        lb_quant q, q2;
        CHECK(lb_quant_bind(&q, &cfg, CH, INNER, OUTER * INNER, p, dp, st) == LB_OK &&
                  lb_quant_bind(&q2, &plain, CH, INNER, OUTER * INNER, p2, dp2, st2) == LB_OK,
              "bind: %s", lb_error_msg());
        st[0] = st2[0] = 1;
        for (int c = 0; c < CH; c++) p[c] = steps[c], p2[c] = lb_po2_step(steps[c]);
        static float x[N], w[N], y[N], y2[N], dx[N], dx2[N];
        double d[N];
        for (int k = 0; k < N; k++) {
            int c = (k / INNER) % CH;
            float se = p2[c];
            double u, f;
            do {
                x[k] = se * 5.0f * lb_rng_normal(&r);
                if (!sg) x[k] = fabsf(x[k]);
                u = (double)(x[k] / se);
                f = u - floor(u);
            } while (fabs(f - 0.5) < 1e-2 || fabs(u + q.qn) < 1e-2 || fabs(u - q.qp) < 1e-2);
            w[k] = lb_rng_normal(&r);
            double uc = u < -q.qn ? -q.qn : u > q.qp ? q.qp : u;
            d[k] = (u >= -q.qn && u <= q.qp) ? nearbyint(uc) - uc : 0.0;
        }
        lb_quant_forward(&q, OUTER, x, y, 1);
        lb_quant_forward(&q2, OUTER, x, y2, 1);
        CHECK(memcmp(y, y2, sizeof y) == 0, "sg %d: po2 forward == LSQ forward at s_eff", sg);
        lb_quant_backward(&q, OUTER, x, w, dx, 0);
        lb_quant_backward(&q2, OUTER, x, w, dx2, 0);
        CHECK(memcmp(dx, dx2, sizeof dx) == 0, "sg %d: po2 dx == LSQ dx at s_eff", sg);
        for (int c = 0; c < CH; c++) {
            CHECK(dp[c] == dp2[c] * (p2[c] / p[c]), "sg %d c %d: dparam = LSQ's * s_eff/s", sg, c);
            double s = p[c], rr = (double)p2[c] / s, h = 1e-6 * s, lp = 0, lm = 0, scale = 0;
            for (int o = 0; o < OUTER; o++)
                for (int i = 0; i < INNER; i++) {
                    int k = (o * CH + c) * INNER + i;
                    for (int sgn = -1; sgn <= 1; sgn += 2) {
                        double se = (s + sgn * h) * rr, u = x[k] / se;
                        u = u < -q.qn ? -q.qn : u > q.qp ? q.qp : u;
                        *(sgn < 0 ? &lm : &lp) += w[k] * se * (u + d[k]);
                    }
                    scale += fabs(w[k]) * (q.qn + q.qp) * rr;
                }
            double fd = (lp - lm) / (2 * h), got = dp[c] / q.gscale;
            CHECK(fabs(fd - got) <= 1e-5 * scale, "sg %d c %d: FD dL/ds %.9g vs %.9g", sg, c, fd,
                  got);
        }
    }
}

static void test_errors_and_json(void) {
    const lb_qkind kinds[] = {LB_Q_NONE, LB_Q_FIXED, LB_Q_REG};
    for (int i = 0; i < 3; i++) {
        lb_qcfg c = {.kind = kinds[i], .bits = 4, .po2 = 1};
        CHECK(lb_qcfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "--po2"),
              "po2 refused for %s: %s", lb_qkind_name(kinds[i]), lb_error_msg());
    }
    lb_model_cfg m;
    lb_model_cfg_default(&m);
    m.q.po2 = 1; /* fp32 plan */
    lb_net *n = NULL;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "--po2") &&
              strstr(lb_error_msg(), "fp32"),
          "--po2 without --quant lsq: %s", lb_error_msg());
    lb_net_free(n);
    m.q.kind = LB_Q_REG;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "reg"),
          "--po2 with reg: %s", lb_error_msg());
    lb_net_free(n);
    /* checkpoint fields: written only when set, read back, absent means off / 1 */
    lb_model_cfg_default(&m);
    char *js = lb_model_cfg_to_json(&m);
    CHECK(js && !strstr(js, "po2") && !strstr(js, "width_mult"), "defaults add no fields: %s", js);
    free(js);
    snprintf(m.arch, sizeof m.arch, "mobilenetv2");
    m.width_mult = 0.35f;
    m.q.kind = LB_Q_LSQ;
    m.q.po2 = 1;
    js = lb_model_cfg_to_json(&m);
    lb_model_cfg back;
    CHECK(js && lb_model_cfg_from_json(js, "x.ckpt", &back) == LB_OK && back.q.po2 == 1 &&
              back.width_mult == 0.35f,
          "po2 and width_mult round trip: %s", js);
    free(js);
    CHECK(lb_model_cfg_from_json("{\"arch\":\"mobilenetv1\",\"in_c\":1,\"in_h\":28,\"in_w\":28,"
                                 "\"classes\":10,\"width_mult\":9}",
                                 "x.ckpt", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "width_mult"),
          "width_mult out of range refused: %s", lb_error_msg());
}

/* mobilenetv2 x0.25 W4A4 per-channel, quantizers initialized by one training forward on random
 * data: with --po2 every add and quant requantization and the fc (no BN folded into it: its
 * multiplier is s_in s_w 2^F) are pure shifts, BN-folded convs are not (gamma/sqrt(var) is not a
 * power of two); with plain LSQ nothing is. */
static void test_integer_shifts(void) {
    for (int po2 = 0; po2 <= 1; po2++) {
        lb_model_cfg m;
        lb_model_cfg_default(&m);
        snprintf(m.arch, sizeof m.arch, "mobilenetv2");
        m.width_mult = 0.25f;
        m.q.kind = LB_Q_LSQ;
        m.q.per_channel = 1;
        m.q.po2 = po2;
        m.q.first_bits = m.q.last_bits = 8;
        lb_net *n = NULL;
        lb_status st = lb_model_build(&m, &n);
        if (st == LB_OK) st = lb_net_plan(n, 4, 1);
        CHECK(st == LB_OK, "po2 %d: build: %s", po2, lb_error_msg());
        if (st != LB_OK) {
            lb_net_free(n);
            continue;
        }
        lb_net_init(n, 3);
        lb_rng r;
        lb_rng_seed(&r, 9);
        float *x = malloc(4 * 28 * 28 * sizeof *x);
        for (int i = 0; i < 4 * 28 * 28; i++) x[i] = lb_rng_normal(&r);
        lb_net_forward(n, x, 4, 1);
        free(x);
        const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
        lb_int_model *im = NULL;
        st = lb_int_from_net(n, mean, sd, &im);
        CHECK(st == LB_OK, "po2 %d: integer model: %s", po2, lb_error_msg());
        if (st == LB_OK) {
            lb_int_shift_stats s;
            lb_int_shift_count(im, &s);
            printf("  mobilenetv2 x0.25 W4A4 per-channel%s: shifts in %d of %d conv/linear, %d "
                   "of %d add/quant\n",
                   po2 ? " --po2" : "", s.conv_shift, s.convs, s.other_shift, s.other);
            CHECK(s.other > 0 && s.convs > 0, "po2 %d: ops counted", po2);
            if (po2)
                CHECK(s.other_shift == s.other && s.conv_shift == 1,
                      "po2: all %d add/quant (got %d) and only the fc (got %d) are shifts", s.other,
                      s.other_shift, s.conv_shift);
            else
                CHECK(s.other_shift < s.other && s.conv_shift == 0,
                      "plain LSQ: shifts %d/%d, %d convs", s.other_shift, s.other, s.conv_shift);
            lb_int_free(im);
        }
        lb_net_free(n);
    }
}

int main(void) {
    test_exponent();
    test_vs_lsq_and_fd();
    test_errors_and_json();
    test_integer_shifts();
    TEST_MAIN_END("test_po2");
}
