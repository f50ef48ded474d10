/* The passes the power-of-two kinds share (po2x_internal.h): weighted quantization error and
 * least-squares sums at a step 2^E, the MSQE exponent search, channel deviations, the second-moment
 * update. The line search's six errors (and grad-po2's two) come from one fused kernel pass. Policy
 * (when to search, what the weights are) stays in msqe_po2.c and grad_po2.c. */
#include "po2x_internal.h"

#include <math.h>

#include "quant_chunk.h"
#include "quant_seg.h"

/* `omp simd` is a request; clang turns an unmet one into a warning at -O1 (quant_seg_impl.h) */
#ifdef __clang__
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

int lb_po2_exponent(double v) {
    if (!(v > 0)) return LB_PO2X_EMIN;
    if (isinf(v)) return LB_PO2X_EMAX;
    int e;
    double m = frexp(v, &e);
    /* log2 v = e + log2 m, m in [0.5, 1): rounds to e when m >= sqrt(1/2) (never a tie) */
    int E = m * m >= 0.5 ? e : e - 1;
    return E < LB_PO2X_EMIN ? LB_PO2X_EMIN : E > LB_PO2X_EMAX ? LB_PO2X_EMAX : E;
}

float lb_po2x_lo(const lb_quant *q) {
    return q->qn == 0 ? -0.5f : nextafterf(-(float)q->qn - 0.5f, 0.0f);
}

float lb_po2x_hi(const lb_quant *q) {
    return nextafterf((float)q->qp + 0.5f, 0.0f);
}

/* Sums partials of tasks into per-channel totals in task order. */
static void fold(const lb_quant *q, const q_plan *p, const double *part, double *out) {
    for (int c = 0; c < q->ch; c++) {
        double acc = 0;
        for (size_t g = 0; g < p->groups; g++) acc += part[(size_t)c * p->groups + g];
        out[c] = acc;
    }
}

static int clampE(int E) {
    return E < LB_PO2X_EMIN ? LB_PO2X_EMIN : E > LB_PO2X_EMAX ? LB_PO2X_EMAX : E;
}

/* Per-task sums (error, k x, k^2) of candidate j, the exponents clamp(base[j][c] + off[j]), into
 * part[j]: one pass over the data, the candidates one after another over each chunk while it is
 * in cache. */
typedef double po2x_part[LB_PO2X_MAXSETS][3][LB_Q_MAXPART];

static void pass_tasks(const lb_quant *q, size_t outer, const float *x, const int *const *base,
                       const int *off, int nE, const po2x_w *w, po2x_part part, q_plan *pp) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    *pp = p;
    float lo = (float)(-q->qn), hi = (float)q->qp;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        float thr = w->thr ? w->thr[t / (long)p.groups] : INFINITY;
        for (int j = 0; j < nE; j++) {
            q_iter it = iter_of(q, &p, (size_t)t);
            float s = ldexpf(1.0f, clampE(base[j][it.c] + off[j]));
            double acc[3] = {0, 0, 0};
            q_run r;
            while (iter_next(&it, &r))
                K->po2_err(x + r.off, w->mom ? w->mom + r.off : NULL, r.len, s, lo, hi, thr, acc);
            for (int k = 0; k < 3; k++) part[j][k][t] = acc[k];
        }
    }
}

void lb_po2x_pass(const lb_quant *q, size_t outer, const float *x, const int *E, const po2x_w *w,
                  double *err, double *qx, double *qq) {
    static const int zero = 0;
    po2x_part part;
    q_plan p;
    pass_tasks(q, outer, x, &E, &zero, 1, w, part, &p);
    fold(q, &p, part[0][0], err);
    if (qx) fold(q, &p, part[0][1], qx), fold(q, &p, part[0][2], qq);
}

/* The errors alone of the candidates (what lb_po2x_best compares), all in one pass of the fused
 * kernel: part[j][0] the same bits as pass_tasks gives. */
static void err_tasks(const lb_quant *q, size_t outer, const float *x, const int *const *base,
                      const int *off, int nE, const po2x_w *w, po2x_part part, q_plan *pp) {
    const lb_qseg_kernels *K = lb_qseg_get();
    q_plan p = plan_of(q, outer);
    *pp = p;
    float lo = (float)(-q->qn), hi = (float)q->qp;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        float thr = w->thr ? w->thr[t / (long)p.groups] : INFINITY;
        q_iter it = iter_of(q, &p, (size_t)t);
        float s[LB_PO2X_MAXSETS];
        double acc[LB_PO2X_MAXSETS] = {0};
        for (int j = 0; j < nE; j++) s[j] = ldexpf(1.0f, clampE(base[j][it.c] + off[j]));
        q_run r;
        while (iter_next(&it, &r))
            K->po2_errs(x + r.off, w->mom ? w->mom + r.off : NULL, r.len, s, nE, lo, hi, thr, acc);
        for (int j = 0; j < nE; j++) part[j][0][t] = acc[j];
    }
}

void lb_po2x_best(const lb_quant *q, size_t outer, const float *x, const int *const *base,
                  const int *off, int nE, const po2x_w *w, double *best, int *E) {
    po2x_part part;
    q_plan p;
    err_tasks(q, outer, x, base, off, nE, w, part, &p);
    for (int c = 0; c < q->ch; c++)
        for (int j = 0; j < nE; j++) {
            double e = 0;
            for (size_t g = 0; g < p.groups; g++) e += part[j][0][(size_t)c * p.groups + g];
            if (e < best[c]) best[c] = e, E[c] = clampE(base[j][c] + off[j]);
        }
}

void lb_po2x_std(const lb_quant *q, size_t outer, const float *x, double *sd) {
    q_plan p = plan_of(q, outer);
    double part[LB_Q_MAXPART], mean[LB_PO2_MAX_CH];
    for (int pass = 0; pass < 2; pass++) {
#pragma omp parallel for schedule(static) if (p.par)
        for (long t = 0; t < (long)p.tasks; t++) {
            q_iter it = iter_of(q, &p, (size_t)t);
            double mu = pass ? mean[it.c] : 0, acc = 0;
            q_run r;
            while (iter_next(&it, &r)) {
                const float *xs = x + r.off;
                double a = 0;
                if (pass) {
#pragma omp simd reduction(+ : a)
                    for (size_t i = 0; i < r.len; i++)
                        a += ((double)xs[i] - mu) * ((double)xs[i] - mu);
                } else {
#pragma omp simd reduction(+ : a)
                    for (size_t i = 0; i < r.len; i++) a += (double)xs[i];
                }
                acc += a;
            }
            part[t] = acc;
        }
        fold(q, &p, part, pass ? sd : mean);
        double n = (double)p.per_c;
        for (int c = 0; c < q->ch; c++) {
            if (pass)
                sd[c] = n > 0 ? sqrt(sd[c] / n) : 0;
            else
                mean[c] = n > 0 ? mean[c] / n : 0;
        }
    }
}

void lb_po2x_search(const lb_quant *q, size_t outer, const float *x, const po2x_w *w, int *E) {
    int ch = q->ch;
    double best[LB_PO2_MAX_CH], err[LB_PO2_MAX_CH], qx[LB_PO2_MAX_CH], qq[LB_PO2_MAX_CH];
    int cur[LB_PO2_MAX_CH], cand[LB_PO2_MAX_CH];
    lb_po2x_pass(q, outer, x, E, w, best, qx, qq);
    for (int c = 0; c < ch; c++) cur[c] = E[c];
    for (int it = 0; it < 3; it++) {
        int moved = 0;
        for (int c = 0; c < ch; c++) {
            /* no code away from 0 under the weights: no least-squares scale, stay */
            double r = qq[c] > 0 ? qx[c] / qq[c] : 0;
            cand[c] = r > 0 ? lb_po2_exponent(r) : cur[c];
            moved |= cand[c] != cur[c];
        }
        /* the same exponents give the same codes: every later refinement would repeat this one */
        if (!moved) break;
        lb_po2x_pass(q, outer, x, cand, w, err, qx, qq);
        for (int c = 0; c < ch; c++) {
            if (err[c] < best[c]) best[c] = err[c], E[c] = cand[c];
            cur[c] = cand[c];
        }
    }
    /* the six line-search candidates in one pass, compared in the reference's order */
    static const int off[6] = {-3, -2, -1, 1, 2, 3};
    int center[LB_PO2_MAX_CH];
    for (int c = 0; c < ch; c++) center[c] = E[c];
    const int *base[6] = {center, center, center, center, center, center};
    lb_po2x_best(q, outer, x, base, off, 6, w, best, E);
}

void lb_po2x_moments(const lb_quant *q, size_t outer, const float *x, const float *dy,
                     const float *step, float *mom) {
    q_plan p = plan_of(q, outer);
    float lo = lb_po2x_lo(q), hi = lb_po2x_hi(q);
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        float inv = 1.0f / step[it.c]; /* s = 2^E: x * 2^-E is x / s, without a division */
        q_run r;
        while (iter_next(&it, &r))
#pragma omp simd
            for (size_t i = r.off; i < r.off + r.len; i++) {
                float u = x[i] * inv, g = dy[i];
                float v = g * g * (float)((u >= lo) & (u <= hi)); /* a mask: it vectorizes */
                mom[i] = 0.999f * mom[i] + 0.001f * v;
            }
    }
}
