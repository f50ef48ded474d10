/* Gradient-based power-of-two quantizer (methods.md 1b, seed 003; QKeras
 * quantized_bits_learnable_po2, TQT-like): a learned log2 scale e per channel or per tensor, the
 * step 2^E with E an integer taken from e. Not the searched kind (msqe_po2.c).
 *
 * E = ceil(e) (LB_PO2X_ROUND_CEIL) or, the default, "round to lower MSQE": floor(e) when its
 * weighted error is strictly lower than ceil(e)'s, else ceil(e); the weights are the outlier mask
 * [|x| <= 2^e (Qp + 1/2)] (the unconstrained range) times sqrt of the running g^2 (as msqe_po2.c,
 * weights only), both switchable. Init e = log2(max(3 std(x) / Qp, 1e-5)) on the first training
 * forward. Straight-through on the exponent, s = 2^(e + stopgrad(E - e)): ds/de = ln2 s, and e's
 * gradient is ln2 s sum dy (rint(x/s) - x/s) inside, the clipped code outside (clip after round,
 * po2x_internal.h); no 1/sqrt(N Qp) factor (the reference has none).
 *
 * Stable scale (lb_qcfg.stable_after > 0): each training forward adds round(log2 s) = E to a
 * running mean (decay 0.99; the first one sets it); after stable_after training forwards E is
 * frozen at rint(mean) and e gets no gradient. The count lives in state, so a resumed run switches
 * at the same step. */
#include "lb_quant.h"

#include <math.h>

#include "po2x_internal.h"

#define GRAD_MIN_S 1e-5 /* the reference's min_init_scale (an all-zero tensor) */

static int moments_on(const lb_qcfg *cfg) {
    return !(cfg->po2_flags & LB_PO2X_NO_MOMENTS) && cfg->numel > 0;
}

static int grad_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return ch;
}

/* [initialized, E[ch], stable mean[ch], forwards counted, moments] */
static int grad_nstate(const lb_qcfg *cfg, int ch) {
    return 2 + 2 * ch + (moments_on(cfg) ? (int)cfg->numel : 0);
}

static float *moments(const lb_quant *q, size_t outer) {
    if (!moments_on(&q->cfg) || outer * (size_t)q->ch * q->inner != (size_t)q->cfg.numel)
        return NULL;
    return q->state + 2 + 2 * q->ch;
}

static float *count_of(const lb_quant *q) {
    return q->state + 1 + 2 * q->ch;
}

/* The count is stable_after + 1 from the first frozen forward on: the backward of the last
 * unfrozen forward (count == stable_after) still gives e its gradient. */
static int frozen(const lb_quant *q, int in_backward) {
    float n = (float)q->cfg.stable_after, k = *count_of(q);
    return q->cfg.stable_after > 0 && (in_backward ? k > n : k >= n);
}

static void grad_reset(lb_quant *q) {
    for (int i = 0; i < q->nstate; i++) q->state[i] = 1.0f; /* moments start at 1 */
    for (int i = 0; i < 2 + 2 * q->ch; i++) q->state[i] = 0.0f;
    for (int c = 0; c < q->ch; c++) q->param[c] = 0.0f;
}

/* NaN (an e broken between update and projection) goes to the bottom, not through an int cast */
static int clampE(double E) {
    return !(E >= LB_PO2X_EMIN) ? LB_PO2X_EMIN : E > LB_PO2X_EMAX ? LB_PO2X_EMAX : (int)E;
}

static void grad_init(lb_quant *q, size_t outer, const float *x) {
    double sd[LB_PO2_MAX_CH];
    lb_po2x_std(q, outer, x, sd);
    for (int c = 0; c < q->ch; c++) {
        double s = 3.0 * sd[c] / q->qp;
        q->param[c] = (float)log2(s > GRAD_MIN_S ? s : GRAD_MIN_S);
    }
    q->state[0] = 1.0f;
}

/* E of every channel from e (training, not frozen). */
static void choose(lb_quant *q, size_t outer, const float *x, int *E) {
    int lo[LB_PO2_MAX_CH], hi[LB_PO2_MAX_CH], split = 0;
    for (int c = 0; c < q->ch; c++) {
        float e = q->param[c];
        hi[c] = clampE(ceil(e));
        lo[c] = clampE(floor(e));
        E[c] = hi[c];
        split |= lo[c] != hi[c];
    }
    if (q->cfg.po2_round == LB_PO2X_ROUND_CEIL || !split) return;
    float thr[LB_PO2_MAX_CH];
    po2x_w w = {NULL, moments(q, outer)};
    if (!(q->cfg.po2_flags & LB_PO2X_NO_MASK)) {
        for (int c = 0; c < q->ch; c++)
            thr[c] = (float)(exp2((double)q->param[c]) * ((double)q->qp + 0.5));
        w.thr = thr;
    }
    /* ceil first, then floor only when strictly lower: a tie keeps ceil (the reference's) */
    double best[LB_PO2_MAX_CH];
    for (int c = 0; c < q->ch; c++) best[c] = INFINITY;
    const int *base[2] = {hi, lo}, off[2] = {0, 0};
    lb_po2x_best(q, outer, x, base, off, 2, &w, best, E);
}

static void steps_of(const lb_quant *q, float *s) {
    for (int c = 0; c < q->ch; c++) s[c] = ldexpf(1.0f, lb_po2x_state_E(q->state[1 + c]));
}

static void grad_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    float s[LB_PO2_MAX_CH];
    if (training) {
        if (q->state[0] == 0.0f) grad_init(q, outer, x);
        float *mean = q->state + 1 + q->ch, *count = count_of(q);
        if (frozen(q, 0)) {
            for (int c = 0; c < q->ch; c++) q->state[1 + c] = (float)clampE(rint(mean[c]));
            *count = (float)q->cfg.stable_after + 1.0f;
        } else {
            int E[LB_PO2_MAX_CH];
            choose(q, outer, x, E);
            for (int c = 0; c < q->ch; c++) q->state[1 + c] = (float)E[c];
            if (q->cfg.stable_after > 0) {
                for (int c = 0; c < q->ch; c++)
                    mean[c] = *count == 0.0f ? (float)E[c] : 0.99f * mean[c] + 0.01f * (float)E[c];
                *count += 1.0f;
            }
        }
    }
    steps_of(q, s);
    lb_quant_uniform_forward(q, outer, s, x, y);
}

static void grad_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                          int dx_acc) {
    float s[LB_PO2_MAX_CH];
    steps_of(q, s);
    float *mom = moments(q, outer);
    if (mom) lb_po2x_moments(q, outer, x, dy, s, mom); /* before dx (may be dy) is written */
    float lo = lb_po2x_lo(q), hi = lb_po2x_hi(q);
    if (frozen(q, 1)) {
        lb_quant_grid_backward(q, outer, s, lo, hi, x, dy, dx, dx_acc, NULL, 0.0f);
        for (int c = 0; c < q->ch; c++) q->dparam[c] = 0.0f;
        return;
    }
    lb_quant_grid_backward(q, outer, s, lo, hi, x, dy, dx, dx_acc, q->dparam, 1.0f);
    for (int c = 0; c < q->ch; c++) q->dparam[c] = (float)((double)q->dparam[c] * M_LN2 * s[c]);
}

static float grad_step(const lb_quant *q, int c) {
    return ldexpf(1.0f, lb_po2x_state_E(q->state[1 + c]));
}

/* e stays where 2^ceil(e) is a usable step; a NaN e (a broken update) goes back to the exponent
 * in use. */
static int grad_project(lb_quant *q) {
    int at = 0;
    for (int c = 0; c < q->ch; c++) {
        float e = q->param[c];
        if (isnan(e)) e = q->state[1 + c];
        if (e <= (float)LB_PO2X_EMIN) e = (float)LB_PO2X_EMIN, at++;
        if (e >= (float)LB_PO2X_EMAX) e = (float)LB_PO2X_EMAX, at++;
        q->param[c] = e;
    }
    return at;
}

const lb_quant_vt lb_quant_vt_grad_po2 = {
    .name = "grad-po2",
    .nparam = grad_nparam,
    .nstate = grad_nstate,
    .forward = grad_forward,
    .backward = grad_backward,
    .reg = NULL,
    .step = grad_step,
    .reset = grad_reset,
    .project = grad_project,
};
