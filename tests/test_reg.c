/* The regularization-based quantizer (LB_Q_REG, docs/reg.md): level construction for 2..8 bits,
 * the nearest-level rules on hand-made cases, finite-difference checks (double) of both
 * regularizers w.r.t. the weights and every entry of R, the projection, the lambda schedule, the
 * fast pass against the scalar reference and its independence of the thread count, the plan and
 * the model JSON. Not the PyTorch comparison (test_torch_reg.c). */
#include "../src/train/train_internal.h"
#include "lb_models.h"
#include "lb_quant.h"
#include "lb_test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 4096

typedef struct rq {
    lb_quant q;
    float p[MAXP], dp[MAXP], st[MAXP];
} rq;

static void bind(rq *r, lb_reg_levels lv, lb_reg_form fm, int bits, int ch, size_t inner, int pc) {
    lb_qcfg c = {.kind = LB_Q_REG, .bits = bits, .per_channel = pc, .levels = lv, .form = fm};
    memset(r, 0, sizeof *r);
    lb_status st = lb_quant_bind(&r->q, &c, ch, inner, inner, r->p, r->dp, r->st);
    CHECK(st == LB_OK, "bind: %s", lb_error_msg());
}

/* Sets R of channel c (table kinds) or alpha, and marks the quantizer initialized. */
static void set_R(rq *r, int c, const float *R) {
    int nb = r->q.cfg.bits + 1;
    if (r->q.cfg.levels == LB_REG_FIXED)
        memcpy(r->st + 1 + c * nb, R, (size_t)nb * sizeof *R);
    else if (r->q.cfg.levels == LB_REG_LEARNED)
        memcpy(r->p + c * nb, R, (size_t)nb * sizeof *R), r->st[1 + c] = R[0];
    else
        r->p[c] = R[0], r->st[1 + c] = R[0];
    r->st[0] = 1;
}

static unsigned rng_state = 12345u;
static double urand(void) { /* deterministic, [0, 1) */
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) / 16777216.0;
}
static float nrand(float sc) {
    double u = urand() + 1e-9, v = urand();
    return (float)(sc * sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* ---- levels ---------------------------------------------------------------------------------- */
static void test_levels(void) {
    for (int b = 2; b <= 8; b++) {
        int n = 1 << b;
        size_t N = 777;
        float *w = malloc(N * sizeof *w), *y = malloc(N * sizeof *y);
        double am = 0;
        for (size_t j = 0; j < N; j++) w[j] = nrand(0.05f), am += fabs(w[j]);
        am /= (double)N;
        rq r, rl;
        bind(&r, LB_REG_FIXED, LB_REG_MSE, b, 1, N, 0);
        bind(&rl, LB_REG_LEARNED, LB_REG_MSE, b, 1, N, 0);
        CHECK(r.q.nparam == 0 && r.q.nstate == 1 + (b + 1), "b%d fixed counts", b);
        CHECK(rl.q.nparam == b + 1 && rl.q.nstate == 2, "b%d learned counts", b);
        lb_quant_forward(&r.q, 1, w, y, 1);
        lb_quant_forward(&rl.q, 1, w, y, 1);
        CHECK(memcmp(w, y, N * sizeof *w) == 0, "b%d: training forward is the identity", b);
        float R[9], a[256], al[256];
        CHECK(lb_quant_reg_R(&r.q, 0, R) == b + 1, "b%d: R size", b);
        double s = R[0], s_exp = 2 * am / sqrt(((1 << b) - 1) / 2.0);
        CHECK(fabs(s - s_exp) <= 2e-5 * s_exp, "b%d: init s %.9g vs %.9g", b, s, s_exp);
        int ok = 1;
        for (int i = 0; i < b; i++) ok &= R[i] == (float)(s * (1 << i));
        ok &= R[b] == (float)(s * ((1 << b) - 1) / 2);
        CHECK(ok, "b%d: R = s*[1..2^(b-1), (2^b-1)/2]", b);
        CHECK(lb_quant_levels(&r.q, 0, a) == n && lb_quant_levels(&rl.q, 0, al) == n, "b%d", b);
        CHECK(memcmp(a, al, (size_t)n * sizeof *a) == 0, "b%d: learned levels = fixed at init", b);
        int exact = 1, sym = 1, inc = 1, nz = 1, sr = 1;
        for (int k = 0; k < n; k++) {
            exact &= (double)a[k] == s * (k - (n - 1) / 2.0); /* no rounding at all */
            sym &= a[k] == -a[n - 1 - k];
            if (k) inc &= a[k] > a[k - 1];
            nz &= a[k] != 0;
            double sum = -(double)R[b]; /* S[k] . R, S[k][i] = bit i of k, S[k][b] = -1 */
            for (int i = 0; i < b; i++) sum += ((k >> i) & 1) * (double)R[i];
            sr &= (double)a[k] == sum;
        }
        CHECK(exact && sym && inc && nz && sr && n % 2 == 0,
              "b%d: exact %d symmetric %d increasing %d no zero %d S*R %d", b, exact, sym, inc, nz,
              sr);
        CHECK(r.q.qn == n - 1 && r.q.qp == n - 1, "b%d: odd codes bounds", b);
        float h = lb_quant_step(&r.q, 0);
        ok = h == (float)(s / 2);
        for (int k = 0; k < n; k++) ok &= (float)(2 * k - (n - 1)) * h == a[k];
        CHECK(ok, "b%d: step s/2 with codes 2k-(2^b-1) gives the levels", b);
        CHECK(lb_quant_step(&rl.q, 0) == 0.0f, "b%d: learned levels have no uniform step", b);
        /* step kind: LSQ grid alpha*(k - 2^(b-1)) with alpha = the same s */
        rq rs;
        bind(&rs, LB_REG_STEP, LB_REG_MSE, b, 1, N, 0);
        lb_quant_forward(&rs.q, 1, w, y, 1);
        CHECK(rs.p[0] == (float)s && lb_quant_step(&rs.q, 0) == (float)s, "b%d: alpha", b);
        lb_quant_levels(&rs.q, 0, a);
        ok = rs.q.qn == n / 2 && rs.q.qp == n / 2 - 1;
        for (int k = 0; k < n; k++) ok &= a[k] == (float)(k - n / 2) * (float)s;
        CHECK(ok, "b%d: step-kind levels", b);
        /* the eval forward lands on levels, the indices name them */
        unsigned char *code = malloc(N);
        lb_quant_forward(&r.q, 1, w, y, 0);
        lb_quant_levels(&r.q, 0, a);
        CHECK(lb_quant_reg_codes(&r.q, 1, w, code) == LB_OK, "codes");
        ok = 1;
        for (size_t j = 0; j < N; j++)
            ok &= y[j] == a[code[j]] &&
                  (fabsf(w[j] - y[j]) <= h * 1.0001f || fabsf(w[j]) > fabsf(a[n - 1]));
        CHECK(ok, "b%d: eval forward = level of the index, within half a step", b);
        free(code);
        free(w);
        free(y);
    }
}

/* ---- nearest level on hand-made cases -------------------------------------------------------- */
static void near_case(lb_reg_levels lv, const float *R, int b, const float *w, const float *yexp,
                      const unsigned char *kexp, int n, const char *what) {
    rq r;
    bind(&r, lv, LB_REG_MSE, b, 1, (size_t)n, 0);
    set_R(&r, 0, R);
    float y[32];
    unsigned char k[32];
    lb_quant_forward(&r.q, 1, w, y, 0);
    lb_quant_reg_codes(&r.q, 1, w, k);
    for (int j = 0; j < n; j++) {
        int same = yexp[j] != yexp[j] ? y[j] != y[j] : y[j] == yexp[j];
        CHECK(same && k[j] == kexp[j], "%s: w=%g -> %g (k %d), expected %g (k %d)", what, w[j],
              y[j], k[j], yexp[j], kexp[j]);
    }
}

static void test_nearest(void) {
    const float nan = NAN, inf = INFINITY;
    /* fixed 2 bits, s = 1: levels -1.5 -0.5 0.5 1.5 (k 0..3). Ties go to the lower level. */
    const float R2[] = {1, 2, 1.5f};
    const float w1[] = {0, 1, -1, 100, -100, 0.6f, 1.2f, inf, -inf, nan, 1.5f, -0.5f};
    const float y1[] = {-0.5f, 0.5f, -1.5f, 1.5f, -1.5f, 0.5f, 1.5f, 1.5f, -1.5f, nan, 1.5f, -0.5f};
    const unsigned char k1[] = {1, 2, 0, 3, 0, 2, 3, 3, 0, 0, 3, 1};
    near_case(LB_REG_FIXED, R2, 2, w1, y1, k1, 12, "fixed 2b");
    /* learned, not ordered by k: R = [1, .5, .75]: a = -.75 .25 -.25 .75 (k 0..3) */
    const float Rl[] = {1, 0.5f, 0.75f};
    const float w2[] = {0, 0.5f, -0.5f, 0.3f, -2, 2};
    const float y2[] = {-0.25f, 0.25f, -0.75f, 0.25f, -0.75f, 0.75f};
    const unsigned char k2[] = {2, 1, 0, 1, 0, 3};
    near_case(LB_REG_LEARNED, Rl, 2, w2, y2, k2, 6, "learned unordered");
    /* equal levels: R = [1, 1, 1]: a = -1 0 0 1: the smaller k */
    const float Rd[] = {1, 1, 1};
    const float w3[] = {0.1f, -0.1f, 0.5f, 0.6f};
    const float y3[] = {0, 0, 0, 1};
    const unsigned char k3[] = {1, 1, 1, 3};
    near_case(LB_REG_LEARNED, Rd, 2, w3, y3, k3, 4, "learned duplicates");
    /* step kind, alpha = 1, 2 bits: levels -2 -1 0 1, LSQ rounding (half to even) */
    const float Ra[] = {1};
    const float w4[] = {0.5f, 1.5f, -0.5f, -2.5f, -1.5f, 7, nan};
    const float y4[] = {0, 1, -0.0f, -2, -2, 1, nan};
    const unsigned char k4[] = {2, 3, 2, 0, 0, 3, 0};
    near_case(LB_REG_STEP, Ra, 2, w4, y4, k4, 7, "step kind");
}

/* ---- gradients: finite differences of a double reference loss ---------------------------------
 * L(w, R) = (Q/N) sum phi(w - a_k(w)), a_k = S[k].R in double, k(w) the index the quantizer picks
 * (fixed under perturbations this small, away from midpoints), phi = d^2 or 1 - exp(-d^2/sig^2)
 * with sig held constant. */
static double ref_loss(const double *w, size_t n, const double *R, int b, const unsigned char *k,
                       int gauss, double sig, int step) {
    int Q = (1 << b) - 1;
    double L = 0;
    for (size_t j = 0; j < n; j++) {
        double a;
        if (step) {
            a = R[0] * (k[j] - (1 << (b - 1)));
        } else {
            a = -R[b];
            for (int i = 0; i < b; i++) a += ((k[j] >> i) & 1) * R[i];
        }
        double d = w[j] - a;
        L += gauss ? 1 - exp(-d * d / (sig * sig)) : d * d;
    }
    return L * Q / (double)n;
}

/* The regularizer's nearest index of each weight (its levels, not the deployed ones that
 * lb_quant_reg_codes stores): linear search with lb_quant_reg_ref's rule. Step kind: the codes. */
static void reg_nearest(const lb_quant *q, const float *w, size_t n, unsigned char *k) {
    if (q->cfg.levels == LB_REG_STEP) {
        lb_quant_reg_codes(q, 1, w, k);
        return;
    }
    int L = 1 << q->cfg.bits;
    size_t per = n / (size_t)q->ch;
    for (int c = 0; c < q->ch; c++) {
        float a[256], lo = INFINITY, hi = -INFINITY;
        lb_quant_levels(q, c, a);
        for (int j = 0; j < L; j++) lo = fminf(lo, a[j]), hi = fmaxf(hi, a[j]);
        for (size_t i = (size_t)c * per; i < (size_t)(c + 1) * per; i++) {
            float wc = w[i] < lo ? lo : w[i] > hi ? hi : w[i], bd = INFINITY;
            int best = 0;
            for (int kk = 0; kk < L; kk++) {
                float dd = fabsf(wc - a[kk]);
                if (dd < bd || (dd == bd && a[kk] < a[best])) bd = dd, best = kk;
            }
            k[i] = (unsigned char)best;
        }
    }
}

static void grad_case(lb_reg_levels lv, lb_reg_form fm, int b, int ch, int pc) {
    size_t inner = 300, n = inner * (size_t)ch;
    rq r;
    bind(&r, lv, fm, b, ch, inner, pc);
    float *w = malloc(n * sizeof *w), *dx = calloc(n, sizeof *dx), *y = malloc(n * sizeof *y);
    for (size_t j = 0; j < n; j++) w[j] = nrand(0.05f) * (1 + (float)(j / inner));
    lb_quant_forward(&r.q, 1, w, y, 1);
    int nb = b + 1, nch = r.q.ch;
    if (lv == LB_REG_LEARNED) /* perturb R off the uniform grid, still positive */
        for (int i = 0; i < nch * nb; i++) r.p[i] *= (float)(0.9 + 0.2 * urand());
    r.q.reg_weight = 3.0f;
    memset(r.dp, 0, sizeof r.dp);
    float loss = lb_quant_reg(&r.q, 1, w, dx);
    unsigned char *k = malloc(n);
    reg_nearest(&r.q, w, n, k);
    double *wd = malloc(n * sizeof *wd);
    for (size_t j = 0; j < n; j++) wd[j] = w[j];
    char what[128];
    /* per channel: loss, dw at sampled weights, every dR_i (loss is separable over channels when
     * per-channel, so the channel's own part is compared through its weights) */
    size_t per = n / (size_t)nch;
    double total = 0;
    for (int c = 0; c < nch; c++) {
        double R[9];
        float Rf[9];
        lb_quant_reg_R(&r.q, c, Rf);
        for (int i = 0; i < nb; i++) R[i] = Rf[i];
        double sig = lv == LB_REG_STEP ? r.p[c] : Rf[0];
        const double *wc = wd + (size_t)c * per;
        const unsigned char *kc = k + (size_t)c * per;
        int gs = fm == LB_REG_GAUSS, st = lv == LB_REG_STEP;
        double scale = 3.0 * (double)per / (double)n; /* lambda and the layer's N */
        total += scale * ref_loss(wc, per, R, b, kc, gs, sig, st);
        double *wp = malloc(per * sizeof *wp);
        memcpy(wp, wc, per * sizeof *wp);
        int bad = 0;
        for (size_t j = 0; j < per; j += per / 17) {
            double h = 1e-4 * sig, o = wp[j];
            wp[j] = o + h;
            double lp = ref_loss(wp, per, R, b, kc, gs, sig, st);
            wp[j] = o - h;
            double lm = ref_loss(wp, per, R, b, kc, gs, sig, st);
            wp[j] = o;
            double fd = scale * (lp - lm) / (2 * h), an = dx[(size_t)c * per + j];
            if (!(fabs(fd - an) <= 1e-4 * fabs(fd) + 1e-7 * scale / sig)) bad++;
        }
        snprintf(what, sizeof what, "%s/%s b%d ch%d: dw by FD", lb_reg_levels_name(lv),
                 lb_reg_form_name(fm), b, c);
        CHECK(!bad, "%s (%d bad)", what, bad);
        free(wp);
        if (lv != LB_REG_LEARNED) continue;
        for (int i = 0; i < nb; i++) {
            double h = 1e-5 * R[0], o = R[i];
            R[i] = o + h;
            double lp = ref_loss(wc, per, R, b, kc, gs, sig, 0);
            R[i] = o - h;
            double lm = ref_loss(wc, per, R, b, kc, gs, sig, 0);
            R[i] = o;
            double fd = scale * (lp - lm) / (2 * h);
            snprintf(what, sizeof what, "%s b%d ch%d: dR[%d] by FD", lb_reg_form_name(fm), b, c, i);
            CHECK_NEAR(r.dp[c * nb + i], fd, 1e-5 * scale, 1e-4, what);
        }
    }
    snprintf(what, sizeof what, "%s/%s b%d: loss", lb_reg_levels_name(lv), lb_reg_form_name(fm), b);
    CHECK_NEAR(loss, total, 1e-12, 1e-5, what);
    if (lv == LB_REG_STEP) {
        int zero = 1;
        for (int c = 0; c < nch; c++) zero &= r.dp[c] == 0;
        CHECK(zero, "step kind: the regularizer gives alpha no gradient");
    }
    free(w), free(dx), free(y), free(k), free(wd);
}

static void test_grads(void) {
    for (int fm = 0; fm < LB_REG_FORM_COUNT; fm++)
        for (int lv = 0; lv < LB_REG_LEVELS_COUNT; lv++) {
            grad_case((lb_reg_levels)lv, (lb_reg_form)fm, 2, 1, 0);
            grad_case((lb_reg_levels)lv, (lb_reg_form)fm, 4, 3, 1);
            grad_case((lb_reg_levels)lv, (lb_reg_form)fm, 8, 1, 0);
        }
}

/* ---- projection ------------------------------------------------------------------------------ */
static void test_project(void) {
    rq r;
    bind(&r, LB_REG_LEARNED, LB_REG_MSE, 3, 2, 10, 1);
    CHECK(lb_quant_project(&r.q) == 0, "nothing before the init");
    const float R[] = {0.1f, 0.2f, 0.4f, 0.35f};
    set_R(&r, 0, R);
    set_R(&r, 1, R);
    CHECK(lb_quant_project(&r.q) == 0, "valid R untouched");
    r.p[4 + 0] = -0.5f; /* channel 1: a negative step */
    r.p[4 + 2] = 0.0f;  /* and a zero bit weight */
    r.p[4 + 3] = NAN;   /* and a NaN offset */
    r.p[1] = 1e-9f;     /* channel 0: below its floor */
    int at = lb_quant_project(&r.q);
    CHECK(at == 2, "both channels projected (%d)", at);
    CHECK(r.p[1] == 0.01f * 0.1f * 2 && r.p[0] == 0.1f && r.p[2] == 0.4f, "channel 0 floors");
    CHECK(r.p[4] == 0.01f * 0.1f && r.p[6] == ldexpf(0.01f * 0.1f, 2) && r.p[5] == 0.2f &&
              r.p[7] == (float)(0.1 * 7 / 2.0),
          "channel 1: %g %g %g %g", r.p[4], r.p[5], r.p[6], r.p[7]);
    /* levels out of k order still snap to the nearest: compare with a brute-force search */
    const float Rx[] = {0.3f, 0.1f, 0.05f, 0.2f}; /* not superincreasing */
    set_R(&r, 0, Rx);
    float a[8], w[20], y[20];                   /* 2 channels of 10: channel 0 is compared */
    lb_quant_levels_deployed(&r.q, 0, a, NULL); /* the eval snaps to the deployed levels */
    int ok = 1;
    for (int t = 0; t < 200; t++) {
        for (int j = 0; j < 20; j++) w[j] = nrand(0.3f);
        lb_quant_forward(&r.q, 1, w, y, 0);
        for (int j = 0; j < 10; j++) {
            float best = a[0];
            for (int k = 1; k < 8; k++)
                if (fabsf(w[j] - a[k]) < fabsf(w[j] - best)) best = a[k];
            ok &= fabsf(w[j] - y[j]) == fabsf(w[j] - best);
        }
    }
    CHECK(ok, "sorted search = brute force on unordered levels");
    rq s;
    bind(&s, LB_REG_STEP, LB_REG_MSE, 4, 1, 10, 0);
    const float A[] = {0.2f};
    set_R(&s, 0, A);
    s.p[0] = -1;
    CHECK(lb_quant_project(&s.q) == 1 && s.p[0] == 0.01f * 0.2f, "step kind floor");
    CHECK(lb_quant_set_bits(&s.q, 3) == LB_OK && s.q.qp == 3, "step kind may change bits");
    CHECK(lb_quant_set_bits(&r.q, 4) == LB_EINVAL, "table kinds keep their bits");
}

/* ---- lambda schedule ------------------------------------------------------------------------- */
static void test_schedule(void) {
    CHECK(lb_reg_ramp_epoch(100.0 / 120.0, 120) == 100, "E_s rounds (100/120 * 120)");
    CHECK(lb_reg_ramp_epoch(0.5, 120) == 60 && lb_reg_ramp_epoch(0.5, 5) == 3 &&
              lb_reg_ramp_epoch(2, 10) == 10 && lb_reg_ramp_epoch(-1, 10) == 0,
          "E_s rounding and clamping");
    double r = 100.0 / 120.0;
    CHECK(lb_reg_lambda(100, 2000, r, 0, 120) == 100 && lb_reg_lambda(100, 2000, r, 99, 120) == 100,
          "lambda0 before E_s");
    CHECK_NEAR(lb_reg_lambda(100, 2000, r, 100, 120), 100 * pow(20, 1 / 20.0), 0, 1e-15, "E_s");
    CHECK_NEAR(lb_reg_lambda(100, 2000, r, 110, 120), 100 * pow(20, 11 / 20.0), 0, 1e-15, "E_s+10");
    CHECK(lb_reg_lambda(100, 2000, r, 119, 120) == 2000 &&
              lb_reg_lambda(100, 2000, r, 130, 120) == 2000,
          "lambda_max from the last epoch on");
    /* each later epoch multiplies by (lmax/l0)^(1/(E-E_s)) */
    int ok = 1;
    for (int e = 61; e < 120; e++) {
        double q =
            lb_reg_lambda(100, 1000, 0.5, e, 120) / lb_reg_lambda(100, 1000, 0.5, e - 1, 120);
        ok &= fabs(q - pow(10, 1 / 60.0)) < 1e-12;
    }
    CHECK(ok, "geometric growth");
    CHECK(lb_reg_lambda(100, 1000, 1.0, 9, 10) == 100, "no ramp when E_s = E");
    CHECK(lb_reg_lambda(100, 1000, 0.0, 0, 3) == 100 * pow(10, 1 / 3.0), "E_s = 0");
}

/* ---- the fast pass: reference, threads, clamping --------------------------------------------- */
static void test_fast(void) {
    int quick = getenv("LOWBIT_QUICK") != NULL;
    int ch = 64;
    size_t inner = quick ? 700 : 4608, n = inner * (size_t)ch; /* 64x512x3x3: threaded */
    float *w = malloc(n * sizeof *w), *y = malloc(n * sizeof *y);
    float *d1 = malloc(n * sizeof *d1), *d2 = malloc(n * sizeof *d2);
    for (size_t j = 0; j < n; j++) w[j] = nrand(0.02f);
    for (int fm = 0; fm < LB_REG_FORM_COUNT; fm++)
        for (int lv = 0; lv < LB_REG_LEVELS_COUNT; lv++)
            for (int pc = 0; pc < 2; pc++) {
                int b = pc ? 4 : 8;
                rq r;
                bind(&r, (lb_reg_levels)lv, (lb_reg_form)fm, b, ch, inner, pc);
                lb_quant_forward(&r.q, 1, w, y, 1);
                if (lv == LB_REG_LEARNED)
                    for (int i = 0; i < r.q.nparam; i++) r.p[i] *= (float)(0.95 + 0.1 * urand());
                r.q.reg_weight = 100;
                char what[96];
                snprintf(what, sizeof what, "%s/%s b%d pc%d", lb_reg_levels_name(lv),
                         lb_reg_form_name(fm), b, pc);
                float ref[MAXP], l0 = 0, l1;
                int np = r.q.nparam;
                memset(d1, 0, n * sizeof *d1);
                memset(r.dp, 0, sizeof r.dp);
                float lr = lb_quant_reg_ref(&r.q, 1, w, d1);
                memcpy(ref, r.dp, (size_t)np * sizeof *ref);
                int same = 1;
                for (int t = 1; t <= 3; t++) {
                    omp_set_num_threads(t);
                    memset(d2, 0, n * sizeof *d2);
                    memset(r.dp, 0, sizeof r.dp);
                    l1 = lb_quant_reg(&r.q, 1, w, d2);
                    if (t == 1) {
                        l0 = l1;
                        memcpy(r.st + MAXP / 2, r.dp, (size_t)np * sizeof *r.dp);
                        CHECK(memcmp(d1, d2, n * sizeof *d1) == 0, "%s: dx = reference bits", what);
                        CHECK_NEAR(l1, lr, 0, 1e-6, what);
                        for (int i = 0; i < np; i++) CHECK_NEAR(r.dp[i], ref[i], 1e-6, 1e-5, what);
                    }
                    same &= l1 == l0 && memcmp(d1, d2, n * sizeof *d1) == 0 &&
                            memcmp(r.dp, r.st + MAXP / 2, (size_t)np * sizeof *r.dp) == 0;
                }
                omp_set_num_threads(2);
                CHECK(same, "%s: same bits for 1, 2, 3 threads", what);
                /* clamping: Gaussian only */
                memcpy(y, w, n * sizeof *y);
                y[0] = 1e3f, y[n - 1] = -1e3f;
                size_t moved = lb_quant_reg_clamp(&r.q, 1, y);
                if (fm == LB_REG_MSE) {
                    CHECK(moved == 0 && y[0] == 1e3f, "%s: no clamping with MSE", what);
                    continue;
                }
                float a[256], R[9];
                lb_quant_levels(&r.q, 0, a);
                lb_quant_reg_R(&r.q, 0, R);
                float hi = -INFINITY;
                for (int k = 0; k < (1 << b); k++) hi = a[k] > hi ? a[k] : hi;
                float m = lv == LB_REG_FIXED ? hi : hi + 0.5f * R[0];
                CHECK(moved >= 2 && y[0] == m, "%s: clamped to %g (%g), %zu moved", what, m, y[0],
                      moved);
            }
    /* speed, reported (not asserted): one reg pass over 294912 weights */
    if (!quick) {
        rq r;
        bind(&r, LB_REG_FIXED, LB_REG_MSE, 4, ch, inner, 1);
        lb_quant_forward(&r.q, 1, w, y, 1);
        r.q.reg_weight = 100;
        double t0 = omp_get_wtime();
        for (int i = 0; i < 10; i++) lb_quant_reg(&r.q, 1, w, d2);
        printf("reg pass: %.3f ms per %zu weights (4 bit, mse, per-channel)\n",
               (omp_get_wtime() - t0) * 100, n);
    }
    free(w), free(y), free(d1), free(d2);
}

/* ---- backward, plan, JSON -------------------------------------------------------------------- */
static void test_plan(void) {
    rq r;
    bind(&r, LB_REG_LEARNED, LB_REG_MSE, 2, 1, 4, 0);
    float dy[4] = {1, 2, 3, 4}, dx[4] = {1, 1, 1, 1}, x[4] = {0};
    r.dp[0] = 5;
    lb_quant_backward(&r.q, 1, x, dy, dx, 1);
    CHECK(dx[3] == 5 && r.dp[0] == 0, "table kinds: straight-through backward, dparam zeroed");
    lb_model_cfg m;
    lb_model_cfg_default(&m);
    m.q.kind = LB_Q_REG;
    m.q.reg_levels = LB_REG_LEARNED;
    m.q.reg_form = LB_REG_GAUSS;
    m.q.reg_lambda0 = 0.1f;
    m.q.reg_lambda_max = 2000;
    m.q.reg_ramp = 100.0f / 120.0f;
    lb_net *n = NULL;
    CHECK(lb_model_build(&m, &n) == LB_OK, "build: %s", lb_error_msg());
    int w = 0, a = 0, bad = 0, edge = 0, first = -1, last = -1;
    for (int i = 1; n && i < n->nnodes; i++)
        if (n->nodes[i].op == LB_OP_CONV || n->nodes[i].op == LB_OP_LINEAR)
            last = i, first = first < 0 ? i : first;
    for (int i = 1; n && i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        a += d->aqcfg.kind == LB_Q_LSQ;
        bad += d->aqcfg.kind != LB_Q_LSQ && d->aqcfg.kind != LB_Q_NONE;
        if (i == first || i == last) { /* unregularized, LSQ (docs/reg.md, "Plan") */
            edge += d->wqcfg.kind == LB_Q_LSQ;
            continue;
        }
        w += d->wqcfg.kind == LB_Q_REG;
        bad += d->wqcfg.levels != LB_REG_LEARNED || d->wqcfg.form != LB_REG_GAUSS;
    }
    CHECK(w >= 3 && a >= 2 && edge == 2 && !bad,
          "reg body weights (%d), LSQ first/last weights (%d), LSQ activations (%d), %d bad", w,
          edge, a, bad);
    lb_net_free(n);
    char *js = lb_model_cfg_to_json(&m);
    lb_model_cfg back;
    CHECK(js && lb_model_cfg_from_json(js, "rt", &back) == LB_OK, "json: %s", lb_error_msg());
    CHECK(back.q.kind == LB_Q_REG && back.q.reg_levels == LB_REG_LEARNED &&
              back.q.reg_form == LB_REG_GAUSS && back.q.reg_lambda0 == m.q.reg_lambda0 &&
              back.q.reg_lambda_max == m.q.reg_lambda_max && back.q.reg_ramp == m.q.reg_ramp,
          "model JSON round trip of the reg options");
    free(js);
    lb_model_cfg_default(&m);
    m.q.kind = LB_Q_LSQ;
    js = lb_model_cfg_to_json(&m);
    CHECK(js && !strstr(js, "reg_"), "no reg fields for other kinds");
    free(js);
    const char *bad_js = "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":10,"
                         "\"quant\":\"reg\",\"wbits\":4,\"abits\":4,\"first_bits\":8,"
                         "\"last_bits\":8,\"per_channel\":0,\"layer_bits\":\"\","
                         "\"reg_levels\":\"wobbly\"}";
    CHECK(lb_model_cfg_from_json(bad_js, "bad", &back) == LB_EFORMAT, "bad reg fields refused");
    lb_reg_levels lv;
    lb_reg_form fm;
    CHECK(lb_reg_levels_parse("step", &lv) == LB_OK && lv == LB_REG_STEP &&
              lb_reg_form_parse("gauss", &fm) == LB_OK && fm == LB_REG_GAUSS &&
              lb_reg_levels_parse("x", &lv) == LB_EINVAL,
          "names");
    lb_qkind k;
    CHECK(lb_qkind_parse("reg", &k) == LB_OK && k == LB_Q_REG, "kind name");
}

/* Deployed learned levels: on their power-of-two grid with integer codes of at most about
 * 2^LB_REG_DEPLOY_BITS, within (b+1) g / 2 of the regularizer's levels; the eval snap and the
 * stored indices use them; fixed and step levels deploy unchanged. */
static void test_deployed(void) {
    for (int b = 2; b <= 8; b++)
        for (int t = 0; t < 20; t++) {
            rq r;
            bind(&r, LB_REG_LEARNED, LB_REG_MSE, b, 1, 64, 0);
            float R[9], w[64], y[64];
            for (int i = 0; i <= b; i++) R[i] = ldexpf(0.01f, i) * (float)(0.5 + urand());
            set_R(&r, 0, R);
            int L = 1 << b, on = 1, near = 1;
            float a[256], ad[256];
            double g;
            lb_quant_levels(&r.q, 0, a);
            CHECK(lb_quant_levels_deployed(&r.q, 0, ad, &g) == L && g > 0, "b%d: deployed", b);
            double m = 0;
            for (int i = 0; i <= b; i++) m += fabs((double)R[i]);
            CHECK(g >= m / ldexp(1.0, LB_REG_DEPLOY_BITS) &&
                      g < 2 * m / ldexp(1.0, LB_REG_DEPLOY_BITS),
                  "b%d: grid %g for sum|R| %g", b, g, m);
            for (int k = 0; k < L; k++) {
                double c = ad[k] / g;
                on &= c == rint(c) && fabs(c) <= ldexp(1.0, LB_REG_DEPLOY_BITS) + b + 1;
                near &= fabs((double)ad[k] - (double)a[k]) <= (b + 1) * g / 2 + 1e-7 * fabs(a[k]);
            }
            CHECK(on && near, "b%d try %d: deployed levels on the grid (%d), near R's (%d)", b, t,
                  on, near);
            unsigned char k[64];
            for (int j = 0; j < 64; j++) w[j] = nrand(ldexpf(0.01f, b - 1));
            lb_quant_forward(&r.q, 1, w, y, 0);
            lb_quant_reg_codes(&r.q, 1, w, k);
            int same = 1;
            for (int j = 0; j < 64; j++) same &= y[j] == ad[k[j]];
            CHECK(same, "b%d: eval snap = deployed level of the stored index", b);
        }
    for (lb_reg_levels lv = LB_REG_FIXED; lv <= LB_REG_STEP; lv++) {
        rq r;
        bind(&r, lv, LB_REG_MSE, 4, 1, 64, 0);
        float w[64], y[64], a[16], ad[16];
        for (int j = 0; j < 64; j++) w[j] = nrand(0.1f);
        lb_quant_forward(&r.q, 1, w, y, 1);
        double g = 1;
        lb_quant_levels(&r.q, 0, a);
        lb_quant_levels_deployed(&r.q, 0, ad, &g);
        CHECK(memcmp(a, ad, sizeof a) == 0 && g == 0, "%s levels deploy unchanged",
              lb_reg_levels_name(lv));
    }
}

int main(void) {
    omp_set_num_threads(2);
    test_deployed();
    test_levels();
    test_nearest();
    test_grads();
    test_project();
    test_schedule();
    test_fast();
    test_plan();
    TEST_MAIN_END("test_reg");
}
