/* MaQD (methods.md sec. 5, docs/quantizers.md "MaQD"): the round-clip quantizer's values against
 * its formula, finite differences of its surrogate gradients (input and the scale a) in double,
 * fast vs scalar backward, its projection and states; weight standardization against a double
 * reference by finite differences; the option errors and the checkpoint config. Not Layer-Batch
 * Norm and whole nets (test_maqd_nets.c), the PyTorch comparison (test_torch_maqd.c) nor the CLI
 * (tests/cli/maqd.sh). */
#include "../src/train/train_internal.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_ops.h"
#include "lb_quant.h"
#include "lb_test.h"
#include "maqd_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- round-clip --------------------------------------------------------------------------- */
/* The smooth staircase whose derivative is the triangle surrogate: F(u) = floor(u) + 2t^2 for
 * t = frac(u) < 1/2, floor(u) + 1 - 2(1-t)^2 above (F' = 4 min(t, 1-t)). */
static double stair(double u) {
    double f = floor(u), t = u - f;
    return f + (t < 0.5 ? 2 * t * t : 1 - 2 * (1 - t) * (1 - t));
}

/* The surrogate function whose derivative the backward gives for dx: STE clamp(x, lo s, hi s),
 * identity x, triangle s F(clamp(x/s)). */
static double sur_fn(lb_surrogate sur, double x, double s, double lo, double hi) {
    if (sur == LB_SUR_IDENTITY) return x;
    double u = fmin(fmax(x / s, lo), hi);
    return sur == LB_SUR_STE ? u * s : s * stair(u);
}

static void test_roundclip(int is_signed, int per_channel, int states, lb_surrogate sur) {
    enum { CH = 6, IN = 50, N = CH * IN };
    static float x[N], y[N], dy[N], dx[N], dx2[N];
    float p[CH], dp[CH], st[1 + CH], p2[CH], dp2[CH], st2[1 + CH];
    for (int i = 0; i < N; i++) {
        x[i] = (float)(nrand() * 0.8 + (is_signed ? 0 : 0.5));
        if (!is_signed && x[i] < 0) x[i] = 0;
        dy[i] = (float)(urand() - 0.5);
    }
    lb_qcfg cfg = {.kind = LB_Q_ROUNDCLIP,
                   .is_signed = is_signed,
                   .per_channel = per_channel,
                   .states = states,
                   .surrogate = sur};
    char what[96];
    snprintf(what, sizeof what, "roundclip %s %d states%s %s", is_signed ? "signed" : "unsigned",
             states, per_channel ? " per-channel" : "", lb_surrogate_name(sur));
    CHECK(lb_qcfg_roundclip(&cfg, "test") == LB_OK, "%s: states accepted", what);
    int K = is_signed ? (states - 1) / 2 : states - 1;
    lb_quant q, q2;
    CHECK(lb_quant_bind(&q, &cfg, CH, IN, IN, p, dp, st) == LB_OK, "%s: bind: %s", what,
          lb_error_msg());
    CHECK(q.qp == K && q.qn == (is_signed ? K : 0), "%s: K %d, bounds %d..%d", what, K, -q.qn,
          q.qp);
    int ch = q.ch;
    size_t inner = q.inner;
    /* data-driven init: a0 = sqrt(K) / (2 mean|x|) per channel */
    lb_quant_forward(&q, 1, x, y, 1);
    double m = 0;
    for (size_t i = 0; i < inner; i++) m += fabs(x[i]);
    m /= (double)inner;
    CHECK_NEAR(p[0], sqrt(K) / (2 * m), 0, 1e-5, "roundclip init a0");
    CHECK(st[0] == 1.0f && st[1] == p[0], "%s: init recorded", what);
    for (int c = 0; c < ch; c++) p[c] = (float)(1.7 + 0.31 * c) * (float)sqrt(K) / 2.0f;
    lb_quant_forward(&q, 1, x, y, 0);
    int bad = 0, off = 0;
    for (int c = 0; c < ch; c++) {
        float s = 1.0f / p[c];
        for (size_t i = 0; i < inner; i++) {
            size_t e = (size_t)c * inner + i;
            float u = fminf(fmaxf(x[e] / s, (float)-q.qn), (float)q.qp);
            bad += y[e] != s * rintf(u);
            /* the method's formula in double: clip(round(a x), -K, K) / a */
            double r = fmin(fmax(rint((double)p[c] * x[e]), -q.qn), q.qp) / p[c];
            off += fabs(y[e] - r) > 1e-6 * (1 + fabs(r));
        }
    }
    CHECK(bad == 0, "%s: %d values off the shared grid", what, bad);
    CHECK(off <= 1, "%s: %d values differ from clip(round(a x))/a by more than float", what, off);
    CHECK(lb_quant_step(&q, 0) == 1.0f / p[0], "%s: step 1/a", what);
    lb_quant_backward(&q, 1, x, dy, dx, 0);
    /* dx against finite differences of the surrogate function (double) */
    double worst = 0;
    for (int c = 0; c < ch; c++) {
        double s = 1.0f / p[c]; /* the step the kernel uses */
        for (size_t i = 0; i < inner; i++) {
            size_t e = (size_t)c * inner + i;
            double h = 1e-7 * s, lo = -q.qn, hi = q.qp;
            double fd = (sur_fn(sur, x[e] + h, s, lo, hi) - sur_fn(sur, x[e] - h, s, lo, hi)) /
                        (2 * h) * dy[e];
            /* a bound within h: the one-sided surrogate is not differentiable there */
            double u = x[e] / s;
            if (sur != LB_SUR_IDENTITY && (fabs(u - lo) < 1e-5 || fabs(u - hi) < 1e-5)) continue;
            worst = fmax(worst, fabs(dx[e] - fd));
        }
    }
    CHECK(worst < 2e-4, "%s: dx vs finite differences: %.2e", what, worst);
    /* da against finite differences of a -> (R0 + (a - a0) x) / a (the round frozen at a0, its
     * straight-through surrogate) or -+K/a at the clip, times the gradient scale */
    for (int c = 0; c < ch; c++) {
        double a0 = p[c], s = 1.0f / p[c], sum_p = 0, sum_m = 0, h = 1e-6 * a0;
        for (size_t i = 0; i < inner; i++) {
            size_t e = (size_t)c * inner + i;
            double u = (float)(x[e] / (float)s);
            double R0 = rint(u);
            for (int sg = -1; sg <= 1; sg += 2) {
                double a = a0 + sg * h, v;
                if (u < -q.qn)
                    v = -q.qn / a;
                else if (u > q.qp)
                    v = q.qp / a;
                else
                    v = (R0 + (a - a0) * x[e]) / a;
                if (sg > 0)
                    sum_p += dy[e] * v;
                else
                    sum_m += dy[e] * v;
            }
        }
        double fd = (sum_p - sum_m) / (2 * h) * q.gscale;
        CHECK_NEAR(dp[c], fd, 1e-6 * fabs(q.gscale), 2e-4, "roundclip da vs finite differences");
    }
    /* the fast backward (STE: the shared kernel) against the scalar reference */
    CHECK(lb_quant_bind(&q2, &cfg, CH, IN, IN, p2, dp2, st2) == LB_OK, "%s: bind 2", what);
    memcpy(p2, p, sizeof p);
    memcpy(st2, st, sizeof st);
    lb_quant_roundclip_backward_ref(&q2, 1, x, dy, dx2, 0);
    CHECK(memcmp(dx, dx2, sizeof dx) == 0, "%s: fast dx equals the reference's", what);
    for (int c = 0; c < ch; c++) CHECK_NEAR(dp[c], dp2[c], 1e-9, 1e-6, "roundclip da fast vs ref");
    /* projection: a in (0, a0 / floor] */
    float hi0 = st[1] / LB_LSQ_FLOOR;
    p[0] = -1.0f;
    CHECK(lb_quant_project(&q) >= 1 && p[0] == hi0, "%s: negative a to its bound", what);
    p[0] = NAN;
    CHECK(lb_quant_project(&q) >= 1 && p[0] == hi0, "%s: NaN a to its bound", what);
    p[0] = 2.0f;
    for (int c = 1; c < ch; c++) p[c] = 2.0f;
    CHECK(lb_quant_project(&q) == 0 && p[0] == 2.0f, "%s: a inside kept", what);
}

static void test_states(void) {
    struct {
        int is_signed, states, ok, k, bits;
    } cases[] = {{1, 3, 1, 1, 2},     {1, 15, 1, 7, 4},  {1, 9, 1, 4, 4},   {1, 255, 1, 127, 8},
                 {1, 511, 1, 255, 9}, {1, 16, 0, 0, 0},  {1, 1, 0, 0, 0},   {1, 513, 0, 0, 0},
                 {0, 2, 1, 1, 2},     {0, 16, 1, 15, 4}, {0, 11, 1, 10, 4}, {0, 256, 1, 255, 8},
                 {0, 1, 0, 0, 0},     {0, 257, 0, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lb_qcfg c = {
            .kind = LB_Q_ROUNDCLIP, .is_signed = cases[i].is_signed, .states = cases[i].states};
        lb_status st = lb_qcfg_roundclip(&c, "layer 'x'");
        CHECK((st == LB_OK) == cases[i].ok, "states %d signed %d: %s", cases[i].states,
              cases[i].is_signed, st == LB_OK ? "accepted" : lb_error_msg());
        if (st == LB_OK)
            CHECK(lb_roundclip_k(&c) == cases[i].k && c.bits == cases[i].bits,
                  "states %d: K %d bits %d", cases[i].states, lb_roundclip_k(&c), c.bits);
        else
            CHECK(strstr(lb_error_msg(), "layer 'x'") != NULL, "error names the layer: %s",
                  lb_error_msg());
    }
    /* the states of the bits when none are given */
    lb_qcfg c = {.kind = LB_Q_ROUNDCLIP, .bits = 8, .is_signed = 1};
    CHECK(lb_roundclip_k(&c) == 127, "8-bit signed: K 127");
    c.is_signed = 0;
    CHECK(lb_roundclip_k(&c) == 255, "8-bit unsigned: K 255");
    /* the plan's range checks, before any data */
    lb_quant_plan q = {.kind = LB_Q_ROUNDCLIP, .wstates = 16};
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL && strstr(lb_error_msg(), "--wstates 16"),
          "even --wstates refused: %s", lb_error_msg());
    q.wstates = 257;
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL, "--wstates 257 refused");
    q.wstates = 15;
    q.astates = 300;
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL && strstr(lb_error_msg(), "--astates 300"),
          "--astates 300 refused: %s", lb_error_msg());
    q.astates = 1;
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL, "--astates 1 refused");
    q.astates = 16;
    CHECK(lb_quant_plan_check(&q) == LB_OK, "--wstates 15 --astates 16: %s", lb_error_msg());
    q.kind = LB_Q_LSQ;
    CHECK(lb_quant_plan_check(&q) == LB_EINVAL && strstr(lb_error_msg(), "round-clip"),
          "--wstates with lsq refused: %s", lb_error_msg());
    q.wstates = 0;
    q.aquant = 1 + LB_Q_ROUNDCLIP;
    CHECK(lb_quant_plan_check(&q) == LB_OK, "--quant lsq --aquant roundclip --astates 16");
    lb_surrogate s;
    CHECK(lb_surrogate_parse("triangle", &s) == LB_OK && s == LB_SUR_TRIANGLE &&
              lb_surrogate_parse("sigmoid", &s) == LB_EINVAL,
          "surrogate names");
}

/* ---- weight standardization --------------------------------------------------------------- */
static double wstd_loss(const double *w, const double *r, int cout, int k) {
    double L = 0;
    for (int c = 0; c < cout; c++) {
        double mu = 0, v = 0;
        for (int j = 0; j < k; j++) mu += w[c * k + j];
        mu /= k;
        for (int j = 0; j < k; j++) v += (w[c * k + j] - mu) * (w[c * k + j] - mu);
        double is = 1 / sqrt(v / k + LB_WSTD_EPS);
        for (int j = 0; j < k; j++) L += r[c * k + j] * (w[c * k + j] - mu) * is;
    }
    return L;
}

static void test_wstd(void) {
    enum { CO = 5, K = 27, N = CO * K };
    float w[N], ws[N], r[N], dw[N], mean[CO], inv[CO];
    double wd[N], rd[N];
    for (int i = 0; i < N; i++) {
        w[i] = (float)(nrand() * 0.1 + 0.02 * (i / K));
        r[i] = (float)nrand();
        wd[i] = w[i];
        rd[i] = r[i];
    }
    lb_wstd_forward(CO, K, w, ws, mean, inv);
    double worst = 0;
    for (int c = 0; c < CO; c++) {
        double s1 = 0, s2 = 0, mu = 0, v = 0;
        for (int j = 0; j < K; j++) mu += wd[c * K + j] / K;
        for (int j = 0; j < K; j++) v += (wd[c * K + j] - mu) * (wd[c * K + j] - mu) / K;
        for (int j = 0; j < K; j++)
            s1 += ws[c * K + j], s2 += (double)ws[c * K + j] * ws[c * K + j];
        /* variance v / (v + eps): the eps keeps a constant channel finite */
        worst = fmax(worst, fmax(fabs(s1 / K), fabs(s2 / K - v / (v + LB_WSTD_EPS))));
    }
    CHECK(worst < 1e-5, "wstd: per-channel mean 0 and variance v/(v+eps): %.2e", worst);
    lb_wstd_backward(CO, K, ws, inv, r, dw);
    worst = 0;
    for (int i = 0; i < N; i++) {
        double h = 1e-6, sv = wd[i];
        wd[i] = sv + h;
        double lp = wstd_loss(wd, rd, CO, K);
        wd[i] = sv - h;
        double lm = wstd_loss(wd, rd, CO, K);
        wd[i] = sv;
        double fd = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(dw[i] - fd) / (1 + fabs(fd)));
    }
    CHECK(worst < 1e-4, "wstd dw vs finite differences: %.2e", worst);
}

static void test_options(void) {
    /* --norm lbn on a model without BN: an error naming the model */
    lb_model_cfg c;
    lb_model_cfg_default(&c);
    snprintf(c.arch, sizeof c.arch, "graph");
    snprintf(c.graph, sizeof c.graph, "%s",
             "{\"nodes\":[{\"op\":\"flatten\",\"in\":[0]},"
             "{\"op\":\"linear\",\"name\":\"fc\",\"in\":[1],\"out\":10,\"bias\":1}]}");
    lb_net *n = NULL;
    lb_status st = lb_model_build(&c, &n);
    CHECK(st == LB_OK, "graph without BN builds: %s", lb_error_msg());
    lb_net_free(n);
    c.norm_layer = 1;
    n = NULL;
    st = lb_model_build(&c, &n);
    CHECK(st == LB_EINVAL && strstr(lb_error_msg(), "--norm lbn: model 'graph'") && !n,
          "--norm lbn without BN: %s", lb_error_msg());
    /* every zoo model takes it */
    const char *arch[] = {"cnn", "resnet20", "resnet18", "mobilenetv1", "mobilenetv2"};
    for (int i = 0; i < 5; i++) {
        lb_model_cfg_default(&c);
        snprintf(c.arch, sizeof c.arch, "%s", arch[i]);
        c.norm_layer = 1;
        c.weight_std = 1;
        n = NULL;
        st = lb_model_build(&c, &n);
        int lbn = 0, bn = 0, ws = 0;
        for (int j = 1; n && j < n->nnodes; j++) {
            bn += n->nodes[j].op == LB_OP_BN;
            lbn += n->nodes[j].op == LB_OP_BN && n->nodes[j].norm;
            ws += n->nodes[j].wstd;
        }
        CHECK(st == LB_OK && bn > 0 && lbn == bn && ws > 0, "%s: every BN is LBN (%d of %d)",
              arch[i], lbn, bn);
        lb_net_free(n);
    }
    lb_model_cfg_default(&c);
    c.q.kind = LB_Q_REG;
    c.weight_std = 1;
    n = NULL;
    CHECK(lb_model_build(&c, &n) == LB_EINVAL && strstr(lb_error_msg(), "--weight-std"),
          "--weight-std with reg refused: %s", lb_error_msg());
    lb_net_free(n);
    /* --layer-states: per-layer states, first/last layers too; the others keep the body's */
    lb_model_cfg_default(&c);
    c.q.kind = LB_Q_ROUNDCLIP;
    c.q.wstates = 15;
    c.q.astates = 16;
    snprintf(c.q.layer_states, sizeof c.q.layer_states, "conv2=7/8,fc=31/32");
    n = NULL;
    st = lb_model_build(&c, &n);
    CHECK(st == LB_OK, "--layer-states: %s", lb_error_msg());
    for (int j = 1; n && j < n->nnodes; j++) {
        const lb_node *d = &n->nodes[j];
        int kw = d->wqcfg.kind == LB_Q_ROUNDCLIP ? lb_roundclip_k(&d->wqcfg) : -1;
        int ka = d->aqcfg.kind == LB_Q_ROUNDCLIP ? lb_roundclip_k(&d->aqcfg) : -1;
        if (strcmp(d->name, "conv2") == 0)
            CHECK(kw == 3 && ka == 7 && d->wqcfg.bits == 3 && d->aqcfg.bits == 3,
                  "conv2=7/8: K %d/%d", kw, ka);
        if (strcmp(d->name, "fc") == 0) CHECK(kw == 15 && ka == 31, "fc=31/32: K %d/%d", kw, ka);
        if (strcmp(d->name, "conv3") == 0)
            CHECK(kw == 7 && ka == 15, "conv3 body: K %d/%d", kw, ka);
        if (strcmp(d->name, "conv1") == 0) CHECK(kw == 127 && ka == -1, "conv1 8-bit: K %d", kw);
    }
    lb_net_free(n);
    const char *badls[] = {"conv9=7/8", "conv2=8/8", "conv2=7/300", "conv2:7/8"};
    for (int i = 0; i < 4; i++) {
        snprintf(c.q.layer_states, sizeof c.q.layer_states, "%s", badls[i]);
        n = NULL;
        st = lb_model_build(&c, &n);
        CHECK(st == LB_EINVAL && strstr(lb_error_msg(), "--layer-states") && !n,
              "--layer-states %s refused: %s", badls[i], lb_error_msg());
        lb_net_free(n);
    }
    c.q.kind = LB_Q_LSQ;
    c.q.wstates = c.q.astates = 0;
    snprintf(c.q.layer_states, sizeof c.q.layer_states, "conv2=7/8");
    CHECK(lb_quant_plan_check(&c.q) == LB_EINVAL && strstr(lb_error_msg(), "--layer-states"),
          "--layer-states with lsq refused: %s", lb_error_msg());
    /* the checkpoint config keeps the MaQD fields, and old configs have none */
    lb_model_cfg_default(&c);
    c.q.kind = LB_Q_ROUNDCLIP;
    c.q.wstates = 9;
    c.q.astates = 6;
    c.q.surrogate = LB_SUR_TRIANGLE;
    snprintf(c.q.layer_states, sizeof c.q.layer_states, "conv2=5/4");
    c.norm_layer = 1;
    c.weight_std = 1;
    char *js = lb_model_cfg_to_json(&c);
    lb_model_cfg b;
    st = lb_model_cfg_from_json(js, "x.ckpt", &b);
    CHECK(st == LB_OK && b.q.kind == LB_Q_ROUNDCLIP && b.q.wstates == 9 && b.q.astates == 6 &&
              b.q.surrogate == LB_SUR_TRIANGLE && b.norm_layer == 1 && b.weight_std == 1 &&
              strcmp(b.q.layer_states, "conv2=5/4") == 0,
          "config round trip: %s", st == LB_OK ? js : lb_error_msg());
    free(js);
    lb_model_cfg_default(&c);
    js = lb_model_cfg_to_json(&c);
    CHECK(!strstr(js, "states") && !strstr(js, "norm_layer") && !strstr(js, "weight_std") &&
              !strstr(js, "surrogate"),
          "plain configs carry no MaQD field: %s", js);
    free(js);
    st = lb_model_cfg_from_json("{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":"
                                "10,\"quant\":\"roundclip\",\"wstates\":16}",
                                "bad.ckpt", &b);
    CHECK(st == LB_EFORMAT && strstr(lb_error_msg(), "bad.ckpt"),
          "a checkpoint with even wstates is refused naming the file: %s", lb_error_msg());
}

int main(void) {
    for (int pc = 0; pc <= 1; pc++) {
        test_roundclip(1, pc, 15, LB_SUR_STE);
        test_roundclip(0, pc, 16, LB_SUR_STE);
    }
    test_roundclip(1, 0, 9, LB_SUR_STE);
    test_roundclip(0, 0, 11, LB_SUR_STE);
    test_roundclip(1, 1, 15, LB_SUR_IDENTITY);
    test_roundclip(1, 0, 7, LB_SUR_TRIANGLE);
    test_roundclip(0, 1, 16, LB_SUR_TRIANGLE);
    test_states();
    test_wstd();
    test_options();
    TEST_MAIN_END("test_maqd");
}
