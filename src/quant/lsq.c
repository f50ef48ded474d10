/* LSQ (Esser et al. 2020): uniform quantizer with a learned step per channel or per tensor,
 * initialized from the data on the first training forward, step gradient scaled by
 * 1/sqrt(n_grad*Qp). Matches the PyTorch peer (shared/peer/peer_models.py) bit for bit in the
 * forward while the step stays above its floor; the loops live in quant.c.
 *
 * The step is kept valid by a projection after every optimizer update: s >= LB_LSQ_FLOOR * s0,
 * s0 the step of the data-driven init (docs/design.md, "Learned scales stay valid"). Without it an
 * early large update can push s through zero: the grid flips sign, every code rounds to 0 and no
 * gradient brings it back (issue 10). A floor relative to s0 is unit-free (weights and
 * activations differ by orders of magnitude) and leaves the gradient formulas untouched.
 *
 * With cfg.po2 (methods.md 1b, "LSQ with a power-of-two constraint") the forward and backward use
 * s_eff = lb_po2_step(s) per channel and the step gradient is multiplied by s_eff/s, the
 * derivative of s_eff = 2^(log2 s + stopgrad(round(log2 s) - log2 s)); init, floor and the
 * parameter itself stay those of plain LSQ, so s moves continuously and s_eff jumps by octaves. */
#include "lb_quant.h"

#include <math.h>

#define LB_Q_MIN_STEP 1e-8f /* the peer's clamp_(min=1e-8) after init */

static int lsq_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return ch;
}

static int lsq_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    return 1 + ch; /* initialized flag + initial steps (the floors), so checkpoints carry them */
}

static void lsq_reset(lb_quant *q) {
    for (int c = 0; c < q->ch; c++) {
        q->param[c] = 1.0f;
        q->state[1 + c] = 1.0f;
    }
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
        q->state[1 + c] = q->param[c];
    }
    q->state[0] = 1.0f;
}

/* Before the init (state[0] == 0) the floors are not known yet and nothing is moved. A NaN step
 * (a broken update) is reset to the floor too: it is not a valid step either. */
static int lsq_project(lb_quant *q) {
    if (q->state[0] == 0.0f) return 0;
    int at = 0;
    for (int c = 0; c < q->ch; c++) {
        float lo = LB_LSQ_FLOOR * q->state[1 + c];
        if (!(q->param[c] > lo)) {
            q->param[c] = lo;
            at++;
        }
    }
    return at;
}

/* Before the init nothing is scaled: the init sets the step for the bits it finds. The floor
 * follows the step, still a share of this width's initial step. */
static void lsq_rescale(lb_quant *q, float r) {
    if (q->state[0] == 0.0f) return;
    for (int c = 0; c < q->ch; c++) {
        q->param[c] *= r;
        q->state[1 + c] *= r;
    }
}

float lb_po2_step(float s) {
    if (!(s > 0.0f) || isinf(s)) return s;
    int e;
    float m = frexpf(s, &e);
    /* m*m is exact in double (24-bit mantissas); never exactly 0.5 */
    return ldexpf(1.0f, (double)m * m >= 0.5 ? e : e - 1);
}

/* The steps the grid uses: the parameters, or their power-of-two versions in buf (the caller's,
 * LB_PO2_MAX_CH floats, checked at bind). */
static const float *lsq_steps(const lb_quant *q, float *buf) {
    if (!q->cfg.po2) return q->param;
    for (int c = 0; c < q->ch; c++) buf[c] = lb_po2_step(q->param[c]);
    return buf;
}

static void lsq_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    float buf[LB_PO2_MAX_CH];
    if (training && q->state[0] == 0.0f) lsq_init(q, outer, x);
    lb_quant_uniform_forward(q, outer, lsq_steps(q, buf), x, y);
}

static void lsq_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                         int dx_acc) {
    float buf[LB_PO2_MAX_CH];
    const float *s = lsq_steps(q, buf);
    lb_quant_uniform_backward(q, outer, s, x, dy, dx, dx_acc, q->dparam, q->gscale);
    if (q->cfg.po2)
        for (int c = 0; c < q->ch; c++) q->dparam[c] *= s[c] / q->param[c];
}

static float lsq_step(const lb_quant *q, int c) {
    return q->cfg.po2 ? lb_po2_step(q->param[c]) : q->param[c];
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
    .project = lsq_project,
    .rescale = lsq_rescale,
};
