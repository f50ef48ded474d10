/* LSQ (Esser et al. 2020): uniform quantizer with a learned step per channel or per tensor,
 * initialized from the data on the first training forward, step gradient scaled by
 * 1/sqrt(n_grad*Qp). Matches the PyTorch peer (shared/peer/peer_models.py) bit for bit in the
 * forward; the loops live in quant.c. */
#include "lb_quant.h"

#include <math.h>

#define LB_Q_MIN_STEP 1e-8f /* the peer's clamp_(min=1e-8) after init */

static int lsq_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return ch;
}

static int lsq_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 1; /* initialized flag, in state so checkpoints carry it */
}

static void lsq_reset(lb_quant *q) {
    for (int c = 0; c < q->ch; c++) q->param[c] = 1.0f;
    q->state[0] = 0.0f;
}

/* s = 2*mean|v|/sqrt(Qp), in float as the peer computes it (the mean itself is summed in double,
 * so it may differ from PyTorch's float sum in the last bits). */
static void lsq_init(lb_quant *q, size_t outer, const float *x) {
    lb_quant_absmean(q, outer, x, q->param);
    float sq = (float)sqrt((double)q->qp);
    for (int c = 0; c < q->ch; c++) {
        float s = 2.0f * q->param[c] / sq;
        q->param[c] = s > LB_Q_MIN_STEP ? s : LB_Q_MIN_STEP;
    }
    q->state[0] = 1.0f;
}

static void lsq_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    if (training && q->state[0] == 0.0f) lsq_init(q, outer, x);
    lb_quant_uniform_forward(q, outer, q->param, x, y);
}

static void lsq_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                         int dx_acc) {
    lb_quant_uniform_backward(q, outer, q->param, x, dy, dx, dx_acc, q->dparam, q->gscale);
}

static float lsq_step(const lb_quant *q, int c) {
    return q->param[c];
}

const lb_quant_vt lb_quant_vt_lsq = {
    .name = "lsq",
    .nparam = lsq_nparam,
    .nstate = lsq_nstate,
    .forward = lsq_forward,
    .backward = lsq_backward,
    .reg = NULL,
    .step = lsq_step,
    .reset = lsq_reset,
};
