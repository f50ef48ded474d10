/* MSQE power-of-two quantizer (methods.md 1b, seed 003; QKeras quantized_bits_msqe_po2): the step
 * 2^E per channel or per tensor is searched for the least weighted quantization error on every
 * training forward; no learned parameter. Not the learned-exponent kind (grad_po2.c).
 *
 * Training forward: E starts at round(log2(max|x| / Qp)) on the first one, then each one runs
 * lb_po2x_search from the previous E: three least-squares refinements and a line search over
 * E-3..E+3. The error is sum m (x - q(x))^2 with m = [|x| <= 2 std(x)] (outlier mask, std of the
 * channel or tensor) times sqrt of a running mean (decay 0.999, from 1) of g^2, g the gradient
 * reaching the quantized value where its code is in range (second moments); both on by default,
 * both switchable (lb_qcfg.po2_flags). The moments are per element, so only weight quantizers
 * (lb_qcfg.numel) keep them. Eval forwards use the stored E and change nothing.
 *
 * Gradient: straight-through where rint(x/2^E) is a code (the reference clips after rounding,
 * po2x_internal.h), nothing to the scale (it is not a function of a parameter). */
#include "lb_quant.h"

#include <math.h>

#include "po2x_internal.h"

#define MSQE_SIGMA 2.0f /* outlier threshold in standard deviations (the reference's) */
#define MSQE_MIN_S 1e-7 /* an all-zero channel: the reference's epsilon in log2(max/Qp + eps) */

static int moments_on(const lb_qcfg *cfg) {
    return !(cfg->po2_flags & LB_PO2X_NO_MOMENTS) && cfg->numel > 0;
}

static int msqe_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 0;
}

static int msqe_nstate(const lb_qcfg *cfg, int ch) {
    return 1 + ch + (moments_on(cfg) ? (int)cfg->numel : 0);
}

static float *moments(const lb_quant *q, size_t outer) {
    /* the moments are indexed by element: only for the whole tensor they were sized for */
    if (!moments_on(&q->cfg) || outer * (size_t)q->ch * q->inner != (size_t)q->cfg.numel)
        return NULL;
    return q->state + 1 + q->ch;
}

static void msqe_reset(lb_quant *q) {
    for (int i = 0; i < q->nstate; i++) q->state[i] = 1.0f; /* moments start at 1 */
    q->state[0] = 0.0f;
    for (int c = 0; c < q->ch; c++) q->state[1 + c] = 0.0f;
}

static void steps_of(const lb_quant *q, float *s) {
    for (int c = 0; c < q->ch; c++) s[c] = ldexpf(1.0f, lb_po2x_state_E(q->state[1 + c]));
}

static void msqe_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    float s[LB_PO2_MAX_CH];
    if (training) {
        int E[LB_PO2_MAX_CH];
        if (q->state[0] == 0.0f) {
            lb_quant_absmax(q, outer, x, s);
            for (int c = 0; c < q->ch; c++) {
                double v = (double)s[c] / q->qp;
                q->state[1 + c] = (float)lb_po2_exponent(v > MSQE_MIN_S ? v : MSQE_MIN_S);
            }
            q->state[0] = 1.0f;
        }
        for (int c = 0; c < q->ch; c++) E[c] = lb_po2x_state_E(q->state[1 + c]);
        float thr[LB_PO2_MAX_CH];
        po2x_w w = {NULL, moments(q, outer)};
        if (!(q->cfg.po2_flags & LB_PO2X_NO_MASK)) {
            double sd[LB_PO2_MAX_CH];
            lb_po2x_std(q, outer, x, sd);
            for (int c = 0; c < q->ch; c++) thr[c] = (float)(MSQE_SIGMA * sd[c]);
            w.thr = thr;
        }
        lb_po2x_search(q, outer, x, &w, E);
        for (int c = 0; c < q->ch; c++) q->state[1 + c] = (float)E[c];
    }
    steps_of(q, s);
    lb_quant_uniform_forward(q, outer, s, x, y);
}

static void msqe_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                          int dx_acc) {
    float s[LB_PO2_MAX_CH];
    steps_of(q, s);
    float *mom = moments(q, outer);
    if (mom) lb_po2x_moments(q, outer, x, dy, s, mom); /* before dx (may be dy) is written */
    lb_quant_grid_backward(q, outer, s, lb_po2x_lo(q), lb_po2x_hi(q), x, dy, dx, dx_acc, NULL,
                           0.0f);
}

static float msqe_step(const lb_quant *q, int c) {
    return ldexpf(1.0f, lb_po2x_state_E(q->state[1 + c]));
}

const lb_quant_vt lb_quant_vt_msqe_po2 = {
    .name = "msqe-po2",
    .nparam = msqe_nparam,
    .nstate = msqe_nstate,
    .forward = msqe_forward,
    .backward = msqe_backward,
    .reg = NULL,
    .step = msqe_step,
    .reset = msqe_reset,
};
