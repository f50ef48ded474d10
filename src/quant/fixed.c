/* The fixed uniform quantizer: step = max|v| / Qp per channel (or per tensor), recomputed on every
 * training forward and kept in state for eval and export; straight-through gradient inside the
 * range; no learnable parameters. Not a calibration search (MSQE would be its own kind). */
#include "lb_quant.h"

#include <math.h>

#define LB_Q_MIN_STEP 1e-8f /* an all-zero tensor still gets a usable (positive) step */

static int fixed_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 0;
}

static int fixed_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return ch;
}

static void fixed_reset(lb_quant *q) {
    for (int c = 0; c < q->ch; c++) q->state[c] = 1.0f;
}

static void fixed_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    if (training) {
        lb_quant_absmax(q, outer, x, q->state);
        float qp = (float)q->qp;
        for (int c = 0; c < q->ch; c++) {
            float m = q->state[c], s = m / qp;
            /* s is max/Qp rounded to float; if it rounded down, max/s may exceed Qp by an ulp and
             * the largest element would lose its gradient. One step up always suffices. */
            if (m / s > qp) s = nextafterf(s, INFINITY);
            q->state[c] = s > LB_Q_MIN_STEP ? s : LB_Q_MIN_STEP;
        }
    }
    lb_quant_uniform_forward(q, outer, q->state, x, y);
}

static void fixed_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                           int dx_acc) {
    lb_quant_uniform_backward(q, outer, q->state, x, dy, dx, dx_acc, NULL, 0.0f);
}

static float fixed_step(const lb_quant *q, int c) {
    return q->state[c];
}

const lb_quant_vt lb_quant_vt_fixed = {
    .name = "fixed",
    .nparam = fixed_nparam,
    .nstate = fixed_nstate,
    .forward = fixed_forward,
    .backward = fixed_backward,
    .reg = NULL,
    .step = fixed_step,
    .reset = fixed_reset,
};
