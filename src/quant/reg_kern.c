/* The loops of the regularization-based quantizer (LB_Q_REG): level tables, the nearest-level
 * search, the eval snap, the regularizer with its gradients (fast, and the scalar reference it is
 * tested against), the indices and the Gaussian form's clamping. The policy (init, parameters,
 * projection, schedule) is reg.c; the rules are stated in lb_quant.h and docs/reg.md.
 *
 * Speed: the search is a branch-free binary search over the 2^b sorted levels (b steps), built
 * once per chunk (insertion sort: the table is usually sorted by k already); the per-weight work
 * of the MSE form is a few flops, so the pass costs about one read and one write of the weights
 * and their gradient. The per-element float expressions are shared with the reference
 * (reg_term), so dx is the same bits; only the double sums differ in order. */
#include "reg_internal.h"

#include <math.h>
#include <string.h>

#include "quant_chunk.h"

/* ---- levels and search ----------------------------------------------------------------------- */
void lb_reg_levels_of(const lb_quant *q, int c, float *a) {
    int b = q->cfg.bits, n = 1 << b;
    if (q->cfg.levels == LB_REG_STEP) {
        float al = q->param[c];
        for (int k = 0; k < n; k++) a[k] = (float)(k - n / 2) * al;
        return;
    }
    const float *R = reg_R(q, c);
    for (int k = 0; k < n; k++) {
        double acc = 0;
        for (int i = 0; i < b; i++)
            if ((k >> i) & 1) acc += (double)R[i];
        a[k] = (float)(acc - (double)R[b]);
    }
}

double lb_reg_R_deployed(const lb_quant *q, int c, double *Rd) {
    int b = q->cfg.bits;
    const float *R = reg_R(q, c);
    double m = 0;
    for (int i = 0; i <= b; i++) m += fabs((double)R[i]);
    int e;
    double fr = frexp(m, &e); /* m = fr * 2^e, fr in [0.5, 1): 2^(e-1) < m <= 2^e unless fr = .5 */
    if (fr == 0.5) e--;
    double gr = ldexp(1.0, e - LB_REG_DEPLOY_BITS);
    for (int i = 0; i <= b; i++) Rd[i] = rint((double)R[i] / gr) * gr; /* exact in float too */
    return gr;
}

void lb_reg_levels_deployed(const lb_quant *q, int c, float *a, double *g) {
    if (g) *g = 0;
    if (q->cfg.levels != LB_REG_LEARNED) {
        lb_reg_levels_of(q, c, a);
        return;
    }
    int b = q->cfg.bits, n = 1 << b;
    double Rd[LB_REG_MAXNB], gr = lb_reg_R_deployed(q, c, Rd);
    for (int k = 0; k < n; k++) { /* multiples of gr below 2^(BITS+1) gr: exact in float */
        double acc = 0;
        for (int i = 0; i < b; i++)
            if ((k >> i) & 1) acc += Rd[i];
        a[k] = (float)(acc - Rd[b]);
    }
    if (g) *g = gr;
}

void lb_reg_table(const lb_quant *q, int c, int deployed, float *t, unsigned char *ix) {
    float a[LB_REG_MAXL];
    int n = 1 << q->cfg.bits;
    if (deployed)
        lb_reg_levels_deployed(q, c, a, NULL);
    else
        lb_reg_levels_of(q, c, a);
    for (int k = 0; k < n; k++) { /* stable: equal values stay in k order */
        int j = k;
        while (j > 0 && t[j - 1] > a[k]) {
            t[j] = t[j - 1];
            ix[j] = ix[j - 1];
            j--;
        }
        t[j] = a[k];
        ix[j] = (unsigned char)k;
    }
}

/* Position in the sorted table t[0..n) (n a power of two) of the level nearest to w: w clamped
 * into [t[0], t[n-1]]; the largest j with t[j] <= w, then j+1 if strictly nearer (ties: the lower
 * level), then back over equal levels (the smallest k). The float distance is monotone in the
 * level, so the two neighbours decide. NaN: 0. */
static inline int reg_near(const float *t, int n, float w) {
    float wc = w < t[0] ? t[0] : w > t[n - 1] ? t[n - 1] : w;
    int lo = 0;
    for (int h = n >> 1; h > 0; h >>= 1) lo = t[lo + h] <= wc ? lo + h : lo;
    int hi = lo + 1 < n ? lo + 1 : lo;
    if (fabsf(wc - t[hi]) < fabsf(wc - t[lo])) lo = hi;
    while (lo > 0 && t[lo - 1] == t[lo]) lo--;
    return lo;
}

/* The step kind's code and level: LSQ's forward, round-half-even of the clamped true quotient. */
static inline float reg_lsq_code(float w, float s, float lo, float hi) {
    float u = w / s;
    u = u < lo ? lo : u > hi ? hi : u;
    return rintf(u);
}

static inline float reg_lsq_level(float w, float s, float lo, float hi) {
    return reg_lsq_code(w, s, lo, hi) * s;
}

void lb_reg_snap(const lb_quant *q, size_t outer, const float *x, float *y) {
    q_plan p = plan_of(q, outer);
    int n = 1 << q->cfg.bits;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float tab[LB_REG_MAXL];
        unsigned char ix[LB_REG_MAXL];
        lb_reg_table(q, (int)it.c, 1, tab, ix);
        q_run r;
        while (iter_next(&it, &r))
            for (size_t j = r.off; j < r.off + r.len; j++) {
                float w = x[j];
                y[j] = w != w ? w : tab[reg_near(tab, n, w)];
            }
    }
}

/* ---- the regularizer ------------------------------------------------------------------------- */
/* Per channel: the Gaussian width and the coefficients. dx += cf * g and dR from coefR * sums of
 * g, where g = d (MSE) or d * exp(-d^2/sigma^2) (Gaussian); sigma is a constant of the pass. */
typedef struct reg_coef {
    int gauss;
    float isig2; /* 1/sigma^2 */
    float cf;    /* lambda * 2Q/N (/ sigma^2) */
    double coefR;
} reg_coef;

static reg_coef coef_of(const lb_quant *q, size_t outer, int c) {
    reg_coef k;
    double nall = (double)outer * (double)q->ch * (double)q->inner;
    double qn = (double)((1 << q->cfg.bits) - 1) / nall, lam = (double)q->reg_weight;
    double sig = q->cfg.levels == LB_REG_STEP ? q->param[c] : reg_R(q, c)[0];
    double is2 = 1.0 / (sig * sig);
    k.gauss = q->cfg.form == LB_REG_GAUSS;
    k.isig2 = (float)is2;
    k.coefR = lam * qn * 2.0 * (k.gauss ? is2 : 1.0);
    k.cf = (float)k.coefR;
    return k;
}

/* One weight at distance d from its level: adds its loss term, returns g. */
static inline float reg_term(const reg_coef *k, float d, double *loss) {
    if (!k->gauss) {
        *loss += (double)d * (double)d;
        return d;
    }
    float e = expf(-(d * d) * k->isig2);
    *loss += 1.0 - (double)e;
    return d * e;
}

/* dR of one chunk from the per-level sums of g: -sum over levels with bit i, and +sum of all for
 * the offset R_b (S[k][b] = -1). */
static void dR_of_levels(const double *sg, int b, double *out) {
    int n = 1 << b;
    for (int i = 0; i <= b; i++) out[i] = 0;
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < b; i++)
            if ((k >> i) & 1) out[i] -= sg[k];
        out[b] += sg[k];
    }
}

/* One chunk: returns its loss sum; learned levels: dR sums into rp (b+1). */
static double reg_chunk(const lb_quant *q, const q_plan *p, size_t task, size_t outer,
                        const float *x, float *dx, double *rp) {
    q_iter it = iter_of(q, p, task);
    int c = (int)it.c, b = q->cfg.bits, n = 1 << b;
    reg_coef k = coef_of(q, outer, c);
    double loss = 0;
    q_run r;
    if (q->cfg.levels == LB_REG_STEP) {
        float s = q->param[c], lo = (float)(-q->qn), hi = (float)q->qp;
        while (iter_next(&it, &r))
            for (size_t j = r.off; j < r.off + r.len; j++) {
                float d = x[j] - reg_lsq_level(x[j], s, lo, hi);
                dx[j] += k.cf * reg_term(&k, d, &loss);
            }
        return loss;
    }
    float tab[LB_REG_MAXL];
    unsigned char ix[LB_REG_MAXL];
    double sg[LB_REG_MAXL];
    lb_reg_table(q, c, 0, tab, ix);
    int learned = q->cfg.levels == LB_REG_LEARNED;
    if (learned) memset(sg, 0, (size_t)n * sizeof *sg);
    while (iter_next(&it, &r))
        for (size_t j = r.off; j < r.off + r.len; j++) {
            float w = x[j];
            int at = reg_near(tab, n, w);
            float g = reg_term(&k, w - tab[at], &loss);
            dx[j] += k.cf * g;
            if (learned) sg[ix[at]] += (double)g;
        }
    if (learned) dR_of_levels(sg, b, rp);
    return loss;
}

float lb_reg_pass(lb_quant *q, size_t outer, const float *x, float *dx) {
    if (q->reg_weight == 0.0f) return 0.0f;
    q_plan p = plan_of(q, outer);
    int nb = reg_nb(q), learned = q->cfg.levels == LB_REG_LEARNED;
    double lossp[LB_Q_MAXPART], rp[LB_Q_MAXPART][LB_REG_MAXNB], loss = 0;
    /* Blocks of LB_Q_MAXPART chunks keep the partials on the stack; with more chunks than that a
     * chunk is a whole channel (quant_chunk.h), so its dR is final and written at once. */
    for (size_t t0 = 0; t0 < p.tasks; t0 += LB_Q_MAXPART) {
        size_t t1 = t0 + LB_Q_MAXPART < p.tasks ? t0 + LB_Q_MAXPART : p.tasks;
#pragma omp parallel for schedule(static) if (p.par)
        for (long t = (long)t0; t < (long)t1; t++) {
            double *r = rp[(size_t)t - t0];
            lossp[(size_t)t - t0] = reg_chunk(q, &p, (size_t)t, outer, x, dx, r);
            if (learned && p.groups == 1) {
                int c = (int)((size_t)t / p.groups);
                double cr = coef_of(q, outer, c).coefR;
                for (int i = 0; i < nb; i++) q->dparam[(size_t)c * nb + i] += (float)(cr * r[i]);
            }
        }
        for (size_t t = t0; t < t1; t++) loss += lossp[t - t0];
    }
    if (learned && p.groups > 1) /* then all chunks were one block */
        for (int c = 0; c < q->ch; c++) {
            double cr = coef_of(q, outer, c).coefR;
            for (int i = 0; i < nb; i++) {
                double acc = 0;
                for (size_t g = 0; g < p.groups; g++) acc += rp[(size_t)c * p.groups + g][i];
                q->dparam[(size_t)c * nb + i] += (float)(cr * acc);
            }
        }
    double qn = (double)((1 << q->cfg.bits) - 1) / ((double)outer * q->ch * (double)q->inner);
    return (float)((double)q->reg_weight * qn * loss);
}

/* The scalar reference: channel by channel, linear search over the levels by k. */
float lb_quant_reg_ref(lb_quant *q, size_t outer, const float *x, float *dx) {
    if (q->cfg.kind != LB_Q_REG || q->reg_weight == 0.0f) return 0.0f;
    int b = q->cfg.bits, n = 1 << b, nb = b + 1;
    double loss = 0;
    for (int c = 0; c < q->ch; c++) {
        float a[LB_REG_MAXL], lo = INFINITY, hi = -INFINITY;
        lb_reg_levels_of(q, c, a);
        for (int j = 0; j < n; j++) {
            lo = a[j] < lo ? a[j] : lo;
            hi = a[j] > hi ? a[j] : hi;
        }
        reg_coef k = coef_of(q, outer, c);
        double rs[LB_REG_MAXNB] = {0};
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t j = (o * (size_t)q->ch + (size_t)c) * q->inner + i;
                float w = x[j], lev;
                int best = 0;
                if (q->cfg.levels == LB_REG_STEP) {
                    lev = reg_lsq_level(w, q->param[c], (float)(-q->qn), (float)q->qp);
                } else {
                    float wc = w < lo ? lo : w > hi ? hi : w, bd = INFINITY;
                    for (int kk = 0; kk < n; kk++) {
                        float dd = fabsf(wc - a[kk]);
                        if (dd < bd || (dd == bd && a[kk] < a[best])) bd = dd, best = kk;
                    }
                    lev = a[best];
                }
                float g = reg_term(&k, w - lev, &loss);
                dx[j] += k.cf * g;
                for (int ii = 0; ii < b; ii++)
                    if ((best >> ii) & 1) rs[ii] -= g;
                rs[b] += g;
            }
        if (q->cfg.levels == LB_REG_LEARNED)
            for (int i = 0; i < nb; i++) q->dparam[(size_t)c * nb + i] += (float)(k.coefR * rs[i]);
    }
    double qn = (double)((1 << b) - 1) / ((double)outer * q->ch * (double)q->inner);
    return (float)((double)q->reg_weight * qn * loss);
}

/* ---- indices and clamping -------------------------------------------------------------------- */
lb_status lb_quant_reg_codes(const lb_quant *q, size_t outer, const float *x, unsigned char *k) {
    if (q->cfg.kind != LB_Q_REG)
        return lb_error_set(LB_EINVAL, "quantizer %s has no level indices", q->vt->name);
    q_plan p = plan_of(q, outer);
    int n = 1 << q->cfg.bits;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float tab[LB_REG_MAXL];
        unsigned char ix[LB_REG_MAXL];
        int step = q->cfg.levels == LB_REG_STEP;
        float s = step ? q->param[it.c] : 0, lo = (float)(-q->qn), hi = (float)q->qp;
        if (!step) lb_reg_table(q, (int)it.c, 1, tab, ix);
        q_run r;
        while (iter_next(&it, &r))
            for (size_t j = r.off; j < r.off + r.len; j++) {
                float w = x[j];
                if (w != w) /* NaN: the lowest level */
                    k[j] = step ? 0 : ix[0];
                else if (step)
                    k[j] = (unsigned char)((int)reg_lsq_code(w, s, lo, hi) + n / 2);
                else
                    k[j] = ix[reg_near(tab, n, w)];
            }
    }
    return LB_OK;
}

size_t lb_quant_reg_clamp(const lb_quant *q, size_t outer, float *w) {
    if (q->cfg.kind != LB_Q_REG || q->cfg.form != LB_REG_GAUSS) return 0;
    q_plan p = plan_of(q, outer);
    int n = 1 << q->cfg.bits;
    size_t moved = 0;
#pragma omp parallel for schedule(static) if (p.par) reduction(+ : moved)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float a[LB_REG_MAXL], lo = INFINITY, hi = -INFINITY, half;
        lb_reg_levels_of(q, (int)it.c, a);
        for (int j = 0; j < n; j++) {
            lo = a[j] < lo ? a[j] : lo;
            hi = a[j] > hi ? a[j] : hi;
        }
        if (q->cfg.levels == LB_REG_FIXED)
            half = 0;
        else
            half = 0.5f * (q->cfg.levels == LB_REG_STEP ? q->param[it.c] : reg_R(q, (int)it.c)[0]);
        lo -= half;
        hi += half;
        q_run r;
        while (iter_next(&it, &r))
            for (size_t j = r.off; j < r.off + r.len; j++) {
                if (w[j] < lo)
                    w[j] = lo, moved++;
                else if (w[j] > hi)
                    w[j] = hi, moved++;
            }
    }
    return moved;
}
