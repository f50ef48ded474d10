/* DoReFa weights and PACT activations (src/quant/dorefa.c, pact.c): forward values from the
 * formulas, finite-difference checks of the straight-through gradients (input, through tanh and
 * the max, and PACT's alpha) in double, codes, the alpha floor, and the plan's choice and refusal
 * of quantizers per side. Not the PyTorch comparison (test_torch_dorefa_pact.c). */
#include "../src/train/train_internal.h"
#include "lb_models.h"
#include "lb_quant.h"
#include "lb_test.h"

#include <math.h>
#include <string.h>

static unsigned rng = 12345u;
static double urand(void) { /* [0, 1) */
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) / 16777216.0;
}

/* The straight-through surrogate of DoReFa (round replaced by the identity): y = t/M, t = tanh w,
 * M = max |t| over the channel; L = sum r*y. The gradient the backward must give is dL/dw. */
static double dorefa_loss(const double *w, const double *r, int ch, int inner) {
    double L = 0;
    for (int c = 0; c < ch; c++) {
        double m = 0;
        for (int i = 0; i < inner; i++) m = fmax(m, fabs(tanh(w[c * inner + i])));
        for (int i = 0; i < inner; i++) L += r[c * inner + i] * tanh(w[c * inner + i]) / m;
    }
    return L;
}

static void test_dorefa(int per_channel, int bits) {
    enum { CH = 4, IN = 27, N = CH * IN };
    float w[N], y[N], dy[N], dx[N];
    double wd[N], rd[N];
    for (int i = 0; i < N; i++) {
        w[i] = (float)((urand() - 0.5) * 1.6);
        dy[i] = (float)(urand() - 0.5);
        wd[i] = w[i];
        rd[i] = dy[i];
    }
    lb_qcfg cfg = {.kind = LB_Q_DOREFA, .bits = bits, .is_signed = 0, .per_channel = per_channel};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, CH, IN, IN, NULL, NULL, NULL) == LB_OK, "bind dorefa");
    int k = (1 << bits) - 1;
    CHECK(q.qn == k && q.qp == k && q.cfg.is_signed && q.nparam == 0 && q.nstate == 0,
          "dorefa bounds %d %d", q.qn, q.qp);
    CHECK(lb_quant_step(&q, 0) == 1.0f / (float)k, "dorefa step 1/k");
    lb_quant_forward(&q, 1, w, y, 1);
    /* values: from the formula in double; an element within 1e-5 of a rounding tie may go
     * either way, none of these is */
    int chs = per_channel ? CH : 1, inner = per_channel ? IN : N, bad = 0, top = 0;
    for (int c = 0; c < chs; c++) {
        double m = 0;
        for (int i = 0; i < inner; i++) m = fmax(m, fabs(tanh(wd[c * inner + i])));
        for (int i = 0; i < inner; i++) {
            double wp = tanh(wd[c * inner + i]) / (2 * m) + 0.5;
            double e = 2 * rint(wp * k) / k - 1;
            if (fabs(y[c * inner + i] - e) > 1e-6) bad++;
            top += fabs(y[c * inner + i]) == 1.0f;
        }
    }
    CHECK(bad == 0, "dorefa values: %d differ", bad);
    CHECK(top >= chs, "the max of every channel reaches +-1 (%d)", top);
    signed char codes[N];
    if (bits <= 7) {
        CHECK(lb_quant_dorefa_codes(&q, 1, w, codes) == LB_OK, "codes");
        bad = 0;
        for (int i = 0; i < N; i++)
            bad += (codes[i] & 1) == 0 || fabsf(codes[i] / (float)k - y[i]) > 1e-6f;
        CHECK(bad == 0, "codes odd and equal to y*k: %d bad", bad);
    }

    /* gradient: central differences of the surrogate in double */
    lb_quant_backward(&q, 1, w, dy, dx, 0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double h = 1e-6, sv = wd[i];
        wd[i] = sv + h;
        double lp = dorefa_loss(wd, rd, chs, inner);
        wd[i] = sv - h;
        double lm = dorefa_loss(wd, rd, chs, inner);
        wd[i] = sv;
        double fd = (lp - lm) / (2 * h), e = fabs(dx[i] - fd) / (1e-3 + fabs(fd));
        worst = fmax(worst, e);
    }
    CHECK(worst < 1e-4, "dorefa dx vs finite differences (per_channel %d, %d bits): rel %.2e",
          per_channel, bits, worst);
    /* dx_acc adds */
    float acc[N];
    for (int i = 0; i < N; i++) acc[i] = 1.0f;
    lb_quant_backward(&q, 1, w, dy, acc, 1);
    bad = 0;
    for (int i = 0; i < N; i++) bad += fabsf(acc[i] - (1.0f + dx[i])) > 1e-6f;
    CHECK(bad == 0, "dorefa dx_acc");
}

static void test_dorefa_edges(void) {
    float w[6] = {0, 0, 0, 0, 0, 0}, y[6], dx[6], dy[6] = {1, 1, 1, 1, 1, 1};
    lb_qcfg cfg = {.kind = LB_Q_DOREFA, .bits = 2};
    lb_quant q;
    lb_quant_bind(&q, &cfg, 1, 6, 6, NULL, NULL, NULL);
    lb_quant_forward(&q, 1, w, y, 1);
    lb_quant_backward(&q, 1, w, dy, dx, 0);
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= isfinite(y[i]) && isfinite(dx[i]);
    CHECK(ok, "all-zero weights: finite values and gradients");
    /* two tied maxima share the max's gradient: the sum over both equals one untied maximum's */
    float wt[4] = {0.5f, 0.5f, -0.2f, 0.1f}, gt[4] = {0.3f, -0.1f, 0.7f, 0.2f}, d2[4];
    lb_quant_bind(&q, &cfg, 1, 4, 4, NULL, NULL, NULL);
    lb_quant_backward(&q, 1, wt, gt, d2, 0);
    double t = tanh(0.5), m = t, sgt = 0;
    for (int i = 0; i < 4; i++) sgt += gt[i] * tanh(wt[i]);
    double e0 = (gt[0] / m - 0.5 * sgt / (m * m)) * (1 - t * t);
    CHECK_NEAR(d2[0], e0, 1e-6, 1e-5, "tied maxima split the max gradient evenly");
    /* learned bit-widths (AdaQAT, methods.md sec. 4) change the grid in place */
    CHECK(lb_quant_set_bits(&q, 3) == LB_OK && q.qn == 7 && q.qp == 7 &&
              lb_quant_step(&q, 0) == 1.0f / 7.0f,
          "dorefa set_bits");
    cfg.bits = 8;
    lb_quant_bind(&q, &cfg, 1, 4, 4, NULL, NULL, NULL);
    signed char c[4];
    CHECK(lb_quant_dorefa_codes(&q, 1, wt, c) == LB_EINVAL, "8-bit dorefa codes need 9 bits");
}

/* PACT's surrogate: y = clip(x, 0, alpha); L = sum r*y. */
static double pact_loss(const double *x, const double *r, int n, double alpha) {
    double L = 0;
    for (int i = 0; i < n; i++) L += r[i] * fmin(fmax(x[i], 0.0), alpha);
    return L;
}

static void test_pact(int bits) {
    enum { OUT = 3, IN = 40, N = OUT * IN };
    float x[N], y[N], dy[N], dx[N], p[1], dp[1], st[2];
    double xd[N], rd[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)((urand() - 0.3) * 3.0);
        dy[i] = (float)(urand() - 0.5);
        xd[i] = x[i];
        rd[i] = dy[i];
    }
    lb_qcfg cfg = {.kind = LB_Q_PACT, .bits = bits, .is_signed = 1};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, 1, IN, IN, p, dp, st) == LB_OK, "bind pact");
    int k = (1 << bits) - 1;
    CHECK(q.qn == 0 && q.qp == k && !q.cfg.is_signed && q.nparam == 1 && q.nstate == 2,
          "pact is unsigned");
    CHECK(p[0] == 10.0f && st[0] == 0.0f, "pact reset: alpha 10, not initialized");
    lb_quant_forward(&q, OUT, x, y, 1);
    double am = 0;
    for (int i = 0; i < N; i++) am += fabs(xd[i]);
    am /= N;
    CHECK_NEAR(p[0], k * (2 * am / sqrt(k)), 1e-6, 1e-5, "pact init alpha");
    CHECK(st[0] == 1.0f && st[1] == p[0], "pact init recorded");
    /* move alpha so that some inputs lie above it, away from the grid's rounding ties */
    p[0] = 1.37f;
    float s = p[0] / (float)k;
    CHECK(lb_quant_step(&q, 0) == s, "pact step alpha/k");
    lb_quant_forward(&q, OUT, x, y, 0);
    int bad = 0, above = 0;
    for (int i = 0; i < N; i++) {
        double c = fmin(fmax(xd[i], 0.0), p[0]);
        bad += fabs(y[i] - s * rint(c / s)) > 1e-6;
        above += xd[i] > p[0];
    }
    CHECK(bad == 0 && above > 5, "pact values (%d bad, %d above alpha)", bad, above);
    lb_quant_backward(&q, OUT, x, dy, dx, 0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double h = 1e-6, sv = xd[i];
        xd[i] = sv + h;
        double lp = pact_loss(xd, rd, N, p[0]);
        xd[i] = sv - h;
        double lm = pact_loss(xd, rd, N, p[0]);
        xd[i] = sv;
        worst = fmax(worst, fabs(dx[i] - (lp - lm) / (2 * h)));
    }
    CHECK(worst < 1e-6, "pact dx vs finite differences: %.2e", worst);
    double h = 1e-6;
    double fd = (pact_loss(xd, rd, N, p[0] + h) - pact_loss(xd, rd, N, p[0] - h)) / (2 * h);
    CHECK_NEAR(dp[0], fd, 1e-6, 1e-5, "pact dalpha vs finite differences");
    /* the floor: alpha never goes below 1% of its init, nor stays NaN */
    float a0 = st[1];
    p[0] = -3.0f;
    CHECK(lb_quant_project(&q) == 1 && p[0] == LB_LSQ_FLOOR * a0, "pact floor");
    p[0] = NAN;
    CHECK(lb_quant_project(&q) == 1 && p[0] == LB_LSQ_FLOOR * a0, "pact NaN alpha to the floor");
    p[0] = 2.0f;
    CHECK(lb_quant_project(&q) == 0 && p[0] == 2.0f, "pact alpha inside is kept");
    CHECK(lb_quant_set_bits(&q, 3) == LB_OK && q.qn == 0 && q.qp == 7 &&
              lb_quant_step(&q, 0) == 2.0f / 7.0f && p[0] == 2.0f,
          "pact set_bits keeps alpha");
    cfg.per_channel = 1;
    CHECK(lb_quant_bind(&q, &cfg, 4, IN, IN, p, dp, st) == LB_EINVAL, "pact per channel refused");
}

static void test_plan(void) {
    lb_quant_plan q = {.kind = LB_Q_DOREFA};
    CHECK(lb_quant_plan_wkind(&q) == LB_Q_DOREFA && lb_quant_plan_akind(&q) == LB_Q_PACT,
          "--quant dorefa: dorefa weights, pact activations");
    CHECK(lb_quant_plan_check(&q) == LB_OK, "dorefa plan ok");
    q = (lb_quant_plan){.kind = LB_Q_LSQ, .aquant = 1 + LB_Q_PACT};
    CHECK(lb_quant_plan_wkind(&q) == LB_Q_LSQ && lb_quant_plan_akind(&q) == LB_Q_PACT &&
              lb_quant_plan_check(&q) == LB_OK,
          "--quant lsq --aquant pact");
    q = (lb_quant_plan){.kind = LB_Q_NONE, .wquant = 1 + LB_Q_DOREFA, .aquant = 1 + LB_Q_LSQ};
    CHECK(lb_quant_plan_wkind(&q) == LB_Q_DOREFA && lb_quant_plan_akind(&q) == LB_Q_LSQ,
          "--wquant dorefa --aquant lsq");
    q = (lb_quant_plan){.wquant = 1 + LB_Q_PACT};
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL && strstr(lb_error_msg(), "--wquant pact"),
          "pact on weights refused: %s", lb_error_msg());
    q = (lb_quant_plan){.aquant = 1 + LB_Q_DOREFA};
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL && strstr(lb_error_msg(), "--aquant dorefa"),
          "dorefa on activations refused: %s", lb_error_msg());
    q = (lb_quant_plan){.kind = LB_Q_PACT};
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL, "--quant pact refused: %s", lb_error_msg());
    q = (lb_quant_plan){.kind = LB_Q_LSQ, .wquant = 1 + LB_Q_REG};
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL, "--wquant reg refused: %s", lb_error_msg());
    lb_qkind k;
    CHECK(lb_qkind_parse("dorefa", &k) == LB_OK && k == LB_Q_DOREFA, "parse dorefa");
    CHECK(lb_qkind_parse("pact", &k) == LB_OK && k == LB_Q_PACT, "parse pact");
    CHECK(lb_qkind_parse("dorefa2", &k) == LB_EINVAL, "unknown name");
}

/* The selection in the checkpoint's model config: written only when given, read back; a config
 * without the keys (every older checkpoint) still loads as before; nonsense is refused. */
static void test_config(void) {
    lb_model_cfg m, back;
    lb_model_cfg_default(&m);
    snprintf(m.arch, sizeof m.arch, "cnn");
    m.in_c = 1;
    m.in_h = m.in_w = 28;
    m.q.kind = LB_Q_LSQ;
    char *js = lb_model_cfg_to_json(&m);
    CHECK(js && !strstr(js, "wquant") && !strstr(js, "aquant"), "no keys unless chosen: %s", js);
    free(js);
    m.q.kind = LB_Q_DOREFA;
    m.q.aquant = 1 + LB_Q_LSQ;
    js = lb_model_cfg_to_json(&m);
    CHECK(js && strstr(js, "\"aquant\":\"lsq\"") && !strstr(js, "wquant"), "aquant written: %s",
          js);
    CHECK(lb_model_cfg_from_json(js, "rt", &back) == LB_OK && back.q.kind == LB_Q_DOREFA &&
              back.q.wquant == 0 && back.q.aquant == 1 + LB_Q_LSQ,
          "selection round trip: %s", lb_error_msg());
    free(js);
    const char *old = "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
                      "\"quant\":\"lsq\",\"wbits\":4,\"abits\":4}";
    CHECK(lb_model_cfg_from_json(old, "old", &back) == LB_OK && back.q.wquant == 0 &&
              back.q.aquant == 0 && lb_quant_plan_akind(&back.q) == LB_Q_LSQ,
          "older config loads: %s", lb_error_msg());
    const char *bad = "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
                      "\"quant\":\"lsq\",\"wquant\":\"pact\"}";
    CHECK(lb_model_cfg_from_json(bad, "bad.ckpt", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "bad.ckpt") && strstr(lb_error_msg(), "--wquant pact"),
          "pact weights in a config refused: %s", lb_error_msg());
    bad = "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
          "\"aquant\":\"relu\"}";
    CHECK(lb_model_cfg_from_json(bad, "bad2.ckpt", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "aquant"),
          "unknown aquant refused: %s", lb_error_msg());
}

int main(void) {
    for (int pc = 0; pc < 2; pc++)
        for (int b = 2; b <= 8; b += 3) test_dorefa(pc, b); /* 2, 5, 8 */
    test_dorefa_edges();
    for (int b = 2; b <= 8; b += 2) test_pact(b);
    test_plan();
    test_config();
    TEST_MAIN_END("test_dorefa_pact");
}
