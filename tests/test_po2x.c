/* msqe-po2 and grad-po2 (methods.md 1b, docs/quantizers.md): grids and exact power-of-two steps,
 * MSQE's chosen exponent against a brute-force search over exponents (mask and moments on and
 * off), grad-po2's init and rounding, finite differences of the straight-through surrogates (input
 * gradients of both, e's gradient), the second-moment update, the stable-scale freeze, errors and
 * checkpoint fields, integer shifts, and train + resume bit for bit. PyTorch: test_torch_po2x.c. */
#include "../src/quant/quant_seg.h"
#include "../src/train/train_internal.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N = 240, MAXS = 600 };

/* sum m (x - q)^2 at step 2^E in long double; m from the mask threshold (<= 0: none) and weights */
static long double werr(const float *x, int n, int E, int qn, int qp, double thr, const float *mw) {
    long double s = ldexpl(1, E), acc = 0;
    for (int i = 0; i < n; i++) {
        long double u = x[i] / s, k = nearbyintl(u);
        k = k < -qn ? -qn : k > qp ? qp : k;
        long double d = x[i] - k * s, m = (thr <= 0 || fabs(x[i]) <= thr) ? 1 : 0;
        if (mw) m *= sqrtf(mw[i]); /* the weight is a float, as in the quantizer */
        acc += m * d * d;
    }
    return acc;
}

static int brute_E(const float *x, int n, int qn, int qp, double thr, const float *mw) {
    int best = -40;
    long double be = werr(x, n, best, qn, qp, thr, mw);
    for (int E = -39; E <= 20; E++) {
        long double e = werr(x, n, E, qn, qp, thr, mw);
        if (e < be) be = e, best = E;
    }
    return best;
}

static double std_of(const float *x, int n) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    return sqrt(v / n);
}

static void bind(lb_quant *q, lb_qkind k, int bits, int sg, int pc, int ch, int inner, long numel,
                 int flags, float *p, float *dp, float *st) {
    lb_qcfg c = {.kind = k,
                 .bits = bits,
                 .is_signed = sg,
                 .per_channel = pc,
                 .po2_flags = flags,
                 .numel = numel};
    CHECK(lb_quant_bind(q, &c, ch, (size_t)inner, (size_t)(ch * inner), p, dp, st) == LB_OK,
          "bind %s: %s", lb_qkind_name(k), lb_error_msg());
}

static void test_grids(void) {
    float p[4], dp[4], st[MAXS];
    lb_quant q;
    bind(&q, LB_Q_MSQE_PO2, 4, 1, 0, 1, N, 0, 0, p, dp, st);
    CHECK(q.qn == 7 && q.qp == 7, "msqe-po2 4-bit signed: -7..7 (got -%d..%d)", q.qn, q.qp);
    bind(&q, LB_Q_GRAD_PO2, 4, 0, 0, 1, N, 0, 0, p, dp, st);
    CHECK(q.qn == 0 && q.qp == 15, "grad-po2 4-bit unsigned: 0..15 (got -%d..%d)", q.qn, q.qp);
    bind(&q, LB_Q_GRAD_PO2, 2, 1, 0, 1, N, 0, 0, p, dp, st);
    CHECK(q.qn == 1 && q.qp == 1, "grad-po2 2-bit signed: -1..1");
    lb_qcfg c = {.kind = LB_Q_MSQE_PO2, .bits = 9, .is_signed = 1};
    CHECK(lb_qcfg_check(&c) == LB_EINVAL && strstr(lb_error_msg(), "bits"), "bits 9: %s",
          lb_error_msg());
    c.bits = 1;
    CHECK(lb_qcfg_check(&c) == LB_EINVAL, "bits 1 refused");
    c.bits = 4;
    c.per_channel = 1;
    CHECK(lb_quant_bind(&q, &c, 1, N, N, p, dp, st) == LB_EINVAL &&
              strstr(lb_error_msg(), "one channel"),
          "per-channel on one channel: %s", lb_error_msg());
    lb_qkind k;
    CHECK(lb_qkind_parse("msqe", &k) == LB_EINVAL && strstr(lb_error_msg(), "msqe-po2"),
          "unknown name lists the kinds: %s", lb_error_msg());
    CHECK(lb_qkind_parse("grad-po2", &k) == LB_OK && k == LB_Q_GRAD_PO2, "grad-po2 parses");
}

/* Hand-made tensors: the search's E equals the brute-force minimum of the same weighted error. */
static void test_msqe_brute(void) {
    lb_rng r;
    lb_rng_seed(&r, 11);
    static float x[N], mom[N], y[N];
    const char *shape[4] = {"gaussian", "gaussian + outliers", "uniform", "laplace-ish"};
    int differ = 0;
    for (int t = 0; t < 4; t++) {
        float sc = ldexpf(1.3f, -3 - 2 * t);
        for (int i = 0; i < N; i++) {
            float g = lb_rng_normal(&r);
            x[i] = t == 2   ? (lb_rng_uniform(&r) * 2 - 1) * sc
                   : t == 3 ? sc * g * fabsf(lb_rng_normal(&r))
                            : sc * g;
            mom[i] = 0.01f + lb_rng_uniform(&r) * (i % 7 == 0 ? 50.0f : 1.0f);
        }
        if (t == 1)
            for (int i = 0; i < 6; i++) x[i * 37] = sc * (12.0f + 3 * i) * (i % 2 ? -1 : 1);
        for (int flags = 0; flags < 4; flags++) {
            float p[1], dp[1], st[2 + N];
            lb_quant q;
            bind(&q, LB_Q_MSQE_PO2, 4, 1, 0, 1, N, N, flags, p, dp, st);
            int has_mom = !(flags & LB_PO2X_NO_MOMENTS);
            if (has_mom) memcpy(st + 2, mom, sizeof mom);
            double thr = (flags & LB_PO2X_NO_MASK) ? 0 : (float)(2 * std_of(x, N));
            int want = brute_E(x, N, 7, 7, thr, has_mom ? mom : NULL);
            lb_quant_forward(&q, 1, x, y, 1);
            double mx = 0;
            for (int i = 0; i < N; i++) mx = fabs(x[i]) > mx ? fabs(x[i]) : mx;
            int E = (int)st[1];
            CHECK(E == want, "%s, mask %s, moments %s: search E %d, brute force %d", shape[t],
                  flags & 1 ? "off" : "on", has_mom ? "on" : "off", E, want);
            CHECK(lb_quant_step(&q, 0) == ldexpf(1, E), "step is exactly 2^E");
            /* the grid: every output a multiple of 2^E within +-7 steps */
            int grid = 1;
            for (int i = 0; i < N; i++) {
                float k = y[i] / ldexpf(1, E);
                grid &= k == rintf(k) && fabsf(k) <= 7;
            }
            CHECK(grid, "outputs on the symmetric grid");
            if (flags == 1) differ += E;
            if (flags == 0) differ -= E;
            /* a second forward from there finds the same exponent (a fixed point) */
            lb_quant_forward(&q, 1, x, y, 1);
            CHECK((int)st[1] == E, "stable at the optimum");
        }
    }
    CHECK(differ != 0, "the outlier mask changes at least one choice");
    /* init: E0 = round(log2(max|x| / Qp)), then the search; an eval forward changes nothing */
    float p[1], dp[1], st[2];
    lb_quant q;
    bind(&q, LB_Q_MSQE_PO2, 3, 1, 0, 1, N, 0, LB_PO2X_NO_MOMENTS, p, dp, st);
    lb_quant_forward(&q, 1, x, y, 0);
    CHECK(st[0] == 0 && st[1] == 0, "eval forward before init: nothing set");
    lb_quant_forward(&q, 1, x, y, 1);
    CHECK(st[0] == 1 && (int)st[1] == brute_E(x, N, 3, 3, (float)(2 * std_of(x, N)), NULL),
          "3-bit init + search: %g", (double)st[1]);
}

/* per channel: each channel its own exponent, the brute force per channel */
static void test_msqe_per_channel(void) {
    enum { CH = 3, K = 80 };
    static float x[CH * K], y[CH * K];
    lb_rng r;
    lb_rng_seed(&r, 12);
    for (int c = 0; c < CH; c++)
        for (int i = 0; i < K; i++) x[c * K + i] = ldexpf(lb_rng_normal(&r), -2 - 3 * c);
    float p[1], dp[1], st[1 + CH];
    lb_quant q;
    bind(&q, LB_Q_MSQE_PO2, 4, 1, 1, CH, K, CH * K, LB_PO2X_NO_MOMENTS, p, dp, st);
    CHECK(q.nstate == 1 + CH, "no moments: 1 + ch states");
    lb_quant_forward(&q, 1, x, y, 1);
    for (int c = 0; c < CH; c++) {
        int want = brute_E(x + c * K, K, 7, 7, (float)(2 * std_of(x + c * K, K)), NULL);
        CHECK((int)st[1 + c] == want, "channel %d: E %d vs %d", c, (int)st[1 + c], want);
    }
}

/* The surrogate the straight-through gradients differentiate, frozen at the point as the
 * estimator is: with u0 = x0/s0 and k0 = rint(u0), an element whose code k0 is in range (the
 * reference clips after rounding, so this includes u0 up to half a step past the outer code)
 * gives s (x/s + k0 - u0), one outside gives s clip(k0). Central differences in double against
 * the C gradients. */
static double surrogate(const float *x, const float *w, const double *d, const double *k0, int n,
                        double s, int qn, int qp, int k_shift, double h) {
    double L = 0;
    for (int i = 0; i < n; i++) {
        int in = k0[i] >= -qn && k0[i] <= qp;
        double v =
            in ? ((double)x[i] + (i == k_shift ? h : 0)) / s + d[i] : (k0[i] < -qn ? -qn : qp);
        L += w[i] * s * v;
    }
    return L;
}

static void test_fd(void) {
    lb_rng r;
    lb_rng_seed(&r, 13);
    static float x[N], w[N], y[N], dx[N];
    static double d[N], k0[N];
    for (int kind = 0; kind < 2; kind++)
        for (int sg = 0; sg <= 1; sg++) {
            lb_qkind k = kind ? LB_Q_GRAD_PO2 : LB_Q_MSQE_PO2;
            float p[1], dp[1], st[4 + N];
            lb_quant q;
            bind(&q, k, 4, sg, 0, 1, N, 0, 0, p, dp, st);
            double s0 = 0.0625;
            for (int i = 0; i < N; i++) {
                double u, f;
                do { /* keep away from rounding ties and the clip edges (kinks) */
                    x[i] = (float)(s0 * 6.0 * lb_rng_normal(&r));
                    if (!sg) x[i] = fabsf(x[i]);
                    u = x[i] / s0;
                    f = u - floor(u);
                } while (fabs(f - 0.5) < 1e-2 || fabs(fabs(u) - q.qp - 0.5) < 2e-2);
                w[i] = lb_rng_normal(&r);
            }
            lb_quant_forward(&q, 1, x, y, 1); /* init */
            /* put the step at s0: state E (msqe) or e just below -4 with ceil rounding (grad) */
            st[1] = -4;
            if (kind) p[0] = -4.3f, q.cfg.po2_round = LB_PO2X_ROUND_CEIL, st[0] = 1;
            if (kind)
                lb_quant_forward(&q, 1, x, y, 1);
            else
                lb_quant_forward(&q, 1, x, y, 0);
            CHECK(lb_quant_step(&q, 0) == (float)s0, "%s sg %d: step at 2^-4 (%g)", q.vt->name, sg,
                  (double)lb_quant_step(&q, 0));
            for (int i = 0; i < N; i++) k0[i] = nearbyint(x[i] / s0), d[i] = k0[i] - x[i] / s0;
            lb_quant_backward(&q, 1, x, w, dx, 0);
            double worst = 0;
            for (int i = 0; i < N; i++) {
                double h = 1e-4 * s0;
                double fd = (surrogate(x, w, d, k0, N, s0, q.qn, q.qp, i, h) -
                             surrogate(x, w, d, k0, N, s0, q.qn, q.qp, i, -h)) /
                            (2 * h);
                double e = fabs(fd - dx[i]) / (fabs(w[i]) + 1e-12);
                worst = e > worst ? e : worst;
            }
            CHECK(worst < 1e-6, "%s sg %d: FD of dx, worst relative error %g", q.vt->name, sg,
                  worst);
            if (kind) {
                /* e's gradient: s = 2^E 2^(e - e0) around the point, d frozen */
                double h = 1e-6, lp = 0, lm = 0;
                for (int sgn = -1; sgn <= 1; sgn += 2) {
                    double s = s0 * exp2(sgn * h);
                    double L = surrogate(x, w, d, k0, N, s, q.qn, q.qp, -1, 0);
                    *(sgn < 0 ? &lm : &lp) = L;
                }
                double fd = (lp - lm) / (2 * h), scale = 0;
                for (int i = 0; i < N; i++) scale += fabs(w[i]) * s0 * (q.qp + 1);
                CHECK(fabs(fd - dp[0]) <= 1e-5 * scale, "grad-po2 sg %d: FD de %.9g vs %.9g", sg,
                      fd, (double)dp[0]);
            }
        }
}

static void test_grad_init_round_stable(void) {
    lb_rng r;
    lb_rng_seed(&r, 14);
    static float x[N], y[N], dx[N], g[N];
    for (int i = 0; i < N; i++) x[i] = 0.05f * lb_rng_normal(&r), g[i] = lb_rng_normal(&r);
    float p[1], dp[1], st[4 + N];
    lb_quant q;
    bind(&q, LB_Q_GRAD_PO2, 4, 1, 0, 1, N, N, 0, p, dp, st);
    CHECK(q.nstate == 4 + N, "grad-po2 states: 4 + numel (got %d)", q.nstate);
    lb_quant_forward(&q, 1, x, y, 1);
    double e0 = log2(3 * std_of(x, N) / 7);
    CHECK(fabs(p[0] - e0) < 1e-5, "init e %.7g vs log2(3 std/Qp) %.7g", (double)p[0], e0);
    /* round to lower MSQE: floor when its weighted error (mask 2^e (Qp + 1/2), moments 1) is lower
     */
    for (int t = 0; t < 8; t++) {
        p[0] = -7.9f + 0.45f * t;
        lb_quant_forward(&q, 1, x, y, 1);
        double thr = exp2(p[0]) * 7.5;
        int lo = (int)floorf(p[0]), hi = (int)ceilf(p[0]);
        int want = werr(x, N, lo, 7, 7, thr, NULL) < werr(x, N, hi, 7, 7, thr, NULL) ? lo : hi;
        CHECK((int)st[1] == want, "e %.2f: E %d, want %d", (double)p[0], (int)st[1], want);
    }
    /* second moments: 0.999 m + 0.001 [in range] g^2, from 1 */
    lb_quant_backward(&q, 1, x, g, dx, 0);
    int okm = 1;
    float s = lb_quant_step(&q, 0);
    for (int i = 0; i < N; i++) {
        float k = rintf(x[i] / s), v = (k >= -7 && k <= 7) ? g[i] * g[i] : 0;
        okm &= st[4 + i] == 0.999f * 1.0f + 0.001f * v;
    }
    CHECK(okm, "moments updated from the gradient reaching the quantized weights");
    /* ceil */
    q.cfg.po2_round = LB_PO2X_ROUND_CEIL;
    p[0] = -5.9f;
    lb_quant_forward(&q, 1, x, y, 1);
    CHECK((int)st[1] == -5, "ceil(-5.9) = -5");
    /* stable scale: frozen after 3 training forwards */
    bind(&q, LB_Q_GRAD_PO2, 4, 1, 0, 1, N, 0, LB_PO2X_NO_MOMENTS, p, dp, st);
    q.cfg.stable_after = 3;
    q.cfg.po2_round = LB_PO2X_ROUND_CEIL;
    st[0] = 1;
    float m = 0;
    const int Es[3] = {-4, -2, -2};
    for (int t = 0; t < 3; t++) {
        p[0] = (float)Es[t] - 0.5f;
        lb_quant_forward(&q, 1, x, y, 1);
        m = t == 0 ? (float)Es[t] : 0.99f * m + 0.01f * (float)Es[t];
        lb_quant_backward(&q, 1, x, g, dx, 0);
        CHECK(dp[0] != 0 && (int)st[1] == Es[t], "before the freeze: E %d, de %g", (int)st[1],
              (double)dp[0]);
    }
    CHECK(st[2] == m && st[3] == 3, "running mean %g (want %g), count %g", (double)st[2], (double)m,
          (double)st[3]);
    p[0] = 5.2f;
    lb_quant_forward(&q, 1, x, y, 1);
    lb_quant_backward(&q, 1, x, g, dx, 0);
    CHECK((int)st[1] == (int)rintf(m) && dp[0] == 0, "frozen at rint(mean) %d (E %d), de %g",
          (int)rintf(m), (int)st[1], (double)dp[0]);
}

static void test_plan_errors_json(void) {
    /* per-channel on a layer with one output channel: refused at plan time, naming the layer */
    lb_net *n = lb_net_new(1, 8, 8);
    int c1 = lb_net_conv(n, "one", 0, 1, 3, 1, 1, 1, 0);
    int f = lb_net_act(n, LB_OP_FLATTEN, c1);
    lb_net_linear(n, "fc", f, 4, 1);
    lb_qcfg w = {.kind = LB_Q_GRAD_PO2, .bits = 4, .is_signed = 1, .per_channel = 1};
    lb_net_set_quant(n, c1, &w, NULL);
    CHECK(lb_net_plan(n, 2, 1) == LB_EINVAL && strstr(lb_error_msg(), "'one'") &&
              strstr(lb_error_msg(), "one output channel"),
          "per-channel on one channel: %s", lb_error_msg());
    lb_net_free(n);
    /* --po2 with a kind that has no scale: refused; with the po2 kinds: accepted */
    lb_model_cfg m;
    lb_model_cfg_default(&m);
    m.q.kind = LB_Q_FIXED;
    m.q.po2 = 1;
    CHECK(lb_quant_plan_check(&m.q) == LB_EINVAL && strstr(lb_error_msg(), "--po2"),
          "--po2 with fixed: %s", lb_error_msg());
    m.q.kind = LB_Q_LSQ;
    m.q.wquant = 1 + LB_Q_MSQE_PO2;
    CHECK(lb_quant_plan_check(&m.q) == LB_OK, "--quant lsq --po2 --wquant msqe-po2 accepted");
    /* checkpoint fields: round trip; absent = the reference defaults */
    m.q.po2 = 0;
    m.q.wquant = 0;
    m.q.kind = LB_Q_GRAD_PO2;
    m.q.po2_flags = LB_PO2X_NO_MOMENTS;
    m.q.po2_round = LB_PO2X_ROUND_CEIL;
    m.q.stable_after = 77;
    char *js = lb_model_cfg_to_json(&m);
    lb_model_cfg back;
    CHECK(js && lb_model_cfg_from_json(js, "x.ckpt", &back) == LB_OK &&
              back.q.kind == LB_Q_GRAD_PO2 && back.q.po2_flags == LB_PO2X_NO_MOMENTS &&
              back.q.po2_round == LB_PO2X_ROUND_CEIL && back.q.stable_after == 77,
          "po2 fields round trip: %s", js);
    free(js);
    m.q.kind = LB_Q_LSQ;
    js = lb_model_cfg_to_json(&m);
    CHECK(js && !strstr(js, "msqe") && !strstr(js, "po2_"), "other kinds: no new fields: %s", js);
    free(js);
    /* --quant msqe-po2: grad-po2 activations, written down; a file without "aquant" is older
     * and keeps msqe-po2 activations */
    m.q.kind = LB_Q_MSQE_PO2;
    CHECK(lb_quant_plan_wkind(&m.q) == LB_Q_MSQE_PO2 && lb_quant_plan_akind(&m.q) == LB_Q_GRAD_PO2,
          "msqe-po2: weights %s, activations %s", lb_qkind_name(lb_quant_plan_wkind(&m.q)),
          lb_qkind_name(lb_quant_plan_akind(&m.q)));
    js = lb_model_cfg_to_json(&m);
    CHECK(js && strstr(js, "\"aquant\":\"grad-po2\"") &&
              lb_model_cfg_from_json(js, "x.ckpt", &back) == LB_OK &&
              lb_quant_plan_akind(&back.q) == LB_Q_GRAD_PO2,
          "msqe-po2 aquant written and read: %s", js);
    free(js);
    CHECK(lb_model_cfg_from_json("{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,"
                                 "\"classes\":10,\"quant\":\"msqe-po2\"}",
                                 "x.ckpt", &back) == LB_OK &&
              lb_quant_plan_akind(&back.q) == LB_Q_MSQE_PO2,
          "an older msqe-po2 file keeps msqe-po2 activations: %s", lb_error_msg());
    CHECK(lb_model_cfg_from_json("{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,"
                                 "\"classes\":10,\"quant\":\"msqe-po2\",\"po2_round\":\"up\"}",
                                 "x.ckpt", &back) == LB_EFORMAT &&
              strstr(lb_error_msg(), "po2_round"),
          "bad po2_round refused: %s", lb_error_msg());
}

/* cnn W4A4 per-channel on random data: every step a power of two; the fc (no BN) a shift */
static void test_integer(void) {
    for (int k = 0; k < 2; k++) {
        lb_model_cfg m;
        lb_model_cfg_default(&m);
        m.q.kind = k ? LB_Q_GRAD_PO2 : LB_Q_MSQE_PO2;
        m.q.per_channel = 1;
        lb_net *n = NULL;
        lb_status st = lb_model_build(&m, &n);
        if (st == LB_OK) st = lb_net_plan(n, 4, 1);
        CHECK(st == LB_OK, "%s build: %s", lb_qkind_name(m.q.kind), lb_error_msg());
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
        int po2 = 1;
        for (int i = 1; i < n->nnodes; i++) {
            lb_node *d = &n->nodes[i];
            if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
            for (int c = 0; c < d->wq.ch; c++) {
                int e;
                po2 &= frexpf(lb_quant_step(&d->wq, c), &e) == 0.5f;
            }
            if (d->aqcfg.kind != LB_Q_NONE) {
                int e;
                po2 &= frexpf(lb_quant_step(&d->aq, 0), &e) == 0.5f;
            }
        }
        CHECK(po2, "%s: every step a power of two", lb_qkind_name(m.q.kind));
        const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.25f, 0.25f, 0.25f};
        lb_int_model *im = NULL;
        st = lb_int_from_net(n, mean, sd, &im);
        CHECK(st == LB_OK, "%s integer model: %s", lb_qkind_name(m.q.kind), lb_error_msg());
        if (st == LB_OK) {
            lb_int_shift_stats s;
            lb_int_shift_count(im, &s);
            CHECK(s.conv_shift == 1 && s.convs == 5, "%s: the fc is a shift (%d of %d)",
                  lb_qkind_name(m.q.kind), s.conv_shift, s.convs);
            lb_int_free(im);
        }
        lb_net_free(n);
    }
}

/* The error pass's ISA builds against the baseline and a long double loop: sums within rounding
 * (lane order), on lengths that leave every vector tail, with and without moments and mask. */
static void test_isa_po2_err(void) {
    const lb_qseg_kernels *tabs[3] = {&lb_qseg_base, NULL, NULL};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tabs[1] = &lb_qseg_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        tabs[2] = &lb_qseg_avx512;
    static float x[N], mom[N];
    lb_rng r;
    lb_rng_seed(&r, 15);
    for (int i = 0; i < N; i++) x[i] = 0.3f * lb_rng_normal(&r), mom[i] = lb_rng_uniform(&r) * 4;
    const int lens[] = {1, 7, 15, 16, 17, 63, 64, 65, N};
    int ok = 1;
    for (int t = 0; t < 3; t++) {
        if (!tabs[t]) continue;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int v = 0; v < 4; v++) {
                int n = lens[li];
                const float *mw = v & 1 ? mom : NULL;
                double thr = v & 2 ? (double)0.35f : 0, out[3] = {0, 0, 0};
                tabs[t]->po2_err(x, mw, (size_t)n, 0.0625f, -7, 7, v & 2 ? 0.35f : INFINITY, out);
                long double want = werr(x, n, -4, 7, 7, thr, mw);
                if (!(fabsl(out[0] - want) <= 1e-9L * (want + 1e-12L)))
                    printf("  t %d n %d v %d: %.12g vs %.12Lg\n", t, n, v, out[0], want), ok = 0;
            }
    }
    CHECK(ok, "po2_err: every ISA build matches the long double error");
}

/* The shift-only requantization of the exported C (emit_c.c, lbm_rq with m = 0) against
 * rshift_rne(v 2^j + b, s): the same derivation, checked on random values, both signs, ties. */
static int64_t floorsh(int64_t t, int s) {
    return t >= 0 ? t >> s : -((-t - 1) >> s) - 1;
}

static void test_shift_requant(void) {
    lb_rng r;
    lb_rng_seed(&r, 16);
    long bad = 0;
    for (int it = 0; it < 200000; it++) {
        int j = 1 + (int)(lb_rng_uniform(&r) * 30), s = 1 + (int)(lb_rng_uniform(&r) * 61);
        int64_t v = (int64_t)((lb_rng_uniform(&r) - 0.5) * 4e9);
        int64_t b = (int64_t)((lb_rng_uniform(&r) - 0.5) * 1e17) >> (int)(lb_rng_uniform(&r) * 50);
        if (it % 4 == 0) b = floorsh(b, j) * ((int64_t)1 << j); /* no remainder: ties reachable */
        if (it % 4 == 2) b = floorsh(b, j) * ((int64_t)1 << j) + ((int64_t)1 << (j - 1));
        if (it % 8 == 1 && s > j)
            v = ((v >> (s - j)) * 2 + 1) * ((int64_t)1 << (s - j - 1)); /* tie */
        int64_t want = lb_int_rshift_rne(v * ((int64_t)1 << j) + b, s), got;
        int t = s - j;
        int64_t B = floorsh(b, j), rem = b - B * ((int64_t)1 << j), half = (int64_t)1 << j >> 1;
        if (t < 0) {
            got = v * ((int64_t)1 << -t) + lb_int_rshift_rne(b, s);
        } else {
            int64_t bb = t == 0 ? 2 * (B + (rem >= half)) + (rem == half) : 2 * B + (rem != 0);
            int64_t f = bb & 1, u = v + (bb - f) / 2;
            if (t == 0)
                got = f && (u & 1) ? u - 1 : u;
            else
                got = f ? floorsh(u + ((int64_t)1 << (t - 1)), t) : lb_int_rshift_rne(u, t);
        }
        if (got != want && bad < 3)
            printf("  v %lld j %d s %d b %lld: %lld vs %lld\n", (long long)v, j, s, (long long)b,
                   (long long)got, (long long)want);
        bad += got != want;
    }
    CHECK(bad == 0, "shift-only requantization: %ld of 200000 differ from the multiply form", bad);
}

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb;
    while (same) {
        int x = fgetc(fa), y = fgetc(fb);
        if (x != y) same = 0;
        if (x == EOF || y == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

/* 2 short epochs, stopped after 1 and resumed: the same bytes as the uninterrupted run */
static void test_resume(const char *dir) {
    const lb_qkind pairs[2][2] = {{LB_Q_MSQE_PO2, LB_Q_GRAD_PO2}, {LB_Q_GRAD_PO2, LB_Q_MSQE_PO2}};
    /* the sanitizer pass (LOWBIT_QUICK=1) runs the first pair only */
    const char *qk = getenv("LOWBIT_QUICK");
    int pairs_n = qk && qk[0] == '1' ? 1 : 2;
    for (int t = 0; t < pairs_n; t++) {
        char whole[256], part[256], res[256];
        snprintf(whole, sizeof whole, "%s/whole%d.ckpt", dir, t);
        snprintf(part, sizeof part, "%s/part%d.ckpt", dir, t);
        snprintf(res, sizeof res, "%s/res%d.ckpt", dir, t);
        lb_train_cfg c;
        for (int run = 0; run < 2; run++) {
            lb_train_cfg_default(&c);
            snprintf(c.out, sizeof c.out, "%s", run ? part : whole);
            c.epochs = 2;
            c.batch = 64;
            c.train_limit = 192;
            c.test_limit = 64;
            c.sched.base = 0.02f;
            c.seed = 7;
            c.threads = 1;
            c.model.q.kind = LB_Q_LSQ;
            c.model.q.wquant = 1 + pairs[t][0];
            c.model.q.aquant = 1 + pairs[t][1];
            c.model.q.per_channel = 1;
            c.model.q.stable_after = 4; /* 3 steps an epoch: the freeze falls in epoch 2 */
            c.on_collapse = LB_ON_COLLAPSE_WARN;
            c.stop_after = run;
            float acc;
            CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "train %d/%d: %s", t, run,
                  lb_error_msg());
        }
        lb_train_cfg r;
        lb_train_cfg_default(&r);
        snprintf(r.resume, sizeof r.resume, "%s", part);
        snprintf(r.out, sizeof r.out, "%s", res);
        r.threads = 1;
        r.on_collapse = LB_ON_COLLAPSE_WARN;
        float acc;
        CHECK(lb_train_run(&r, NULL, NULL, &acc) == LB_OK, "resume %d: %s", t, lb_error_msg());
        CHECK(same_file(whole, res), "W %s A %s: resumed checkpoint differs from the whole run",
              lb_qkind_name(pairs[t][0]), lb_qkind_name(pairs[t][1]));
    }
}

int main(void) {
    test_grids();
    test_msqe_brute();
    test_msqe_per_channel();
    test_fd();
    test_grad_init_round_stable();
    test_plan_errors_json();
    test_integer();
    test_isa_po2_err();
    test_shift_requant();
    char dir[] = "/tmp/lowbit_po2x.XXXXXX";
    if (mkdtemp(dir)) {
        test_resume(dir);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) printf("could not remove %s\n", dir);
    }
    TEST_MAIN_END("test_po2x");
}
