/* PACT activation quantizer (Choi et al. 2018; methods.md sec. 1; docs/quantizers.md): y =
 * clip(x, 0, alpha) quantized on [0, alpha] with 2^b-1 steps, alpha learned, one per tensor.
 * Activations only (the plan refuses it on weights); not a weight quantizer.
 *
 * The forward is the uniform grid of step s = alpha/(2^b-1), unsigned (the shared kernel:
 * s * round(clip(x/s, 0, 2^b-1)), so clip and grid are the same as LSQ's with that step).
 * Gradients, the paper's (eq. 3 with the straight-through round): dy/dx = 1 where 0 <= x/s <=
 * 2^b-1 (bounds included, as the shared kernel), dy/dalpha = 1 where x/s > 2^b-1 (x above
 * alpha), 0 elsewhere: no LSQ-style residual term round(x/s) - x/s inside the range, and no
 * 1/sqrt(N Qp) scale. Decisions (init, no weight decay, floor) and their reasons:
 * docs/quantizers.md. */
#include "lb_quant.h"

#include <math.h>

#include "quant_chunk.h"
#include "quant_seg.h"

#define LB_PACT_ALPHA0 10.0f /* the paper's init; used only before the data-driven init */

static int pact_nparam(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 1;
}

static int pact_nstate(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 2; /* initialized flag, initial alpha (the floor) */
}

static void pact_reset(lb_quant *q) {
    q->param[0] = LB_PACT_ALPHA0;
    q->state[0] = 0.0f;
    q->state[1] = LB_PACT_ALPHA0;
}

static float pact_step(const lb_quant *q, int c) {
    (void)c;
    return q->param[0] / (float)q->qp;
}

/* alpha0 = Qp * 2 mean|x| / sqrt(Qp): the clip where LSQ's init puts its top level, so that PACT
 * and LSQ start from the same grid and differ only in how they learn it. */
static void pact_init(lb_quant *q, size_t outer, const float *x) {
    float mean;
    lb_quant_absmean(q, outer, x, &mean);
    float sq = (float)sqrt((double)q->qp);
    float a = (float)q->qp * (2.0f * mean / sq);
    q->param[0] = a > 1e-6f ? a : 1e-6f;
    q->state[1] = q->param[0];
    q->state[0] = 1.0f;
}

static void pact_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    if (training && q->state[0] == 0.0f) pact_init(q, outer, x);
    float s = pact_step(q, 0);
    lb_quant_uniform_forward(q, outer, &s, x, y);
}

/* sum of dy where x/s > hi, in fixed chunks summed in order (thread-count independent). Reads x
 * and dy before the caller overwrites dx (which may be dy). */
static double above_sum(const lb_quant *q, size_t outer, float s, const float *x, const float *dy) {
    q_plan p = plan_of(q, outer);
    double part[LB_Q_MAXPART];
    float hi = (float)q->qp;
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        double acc = 0;
        q_run r;
        while (iter_next(&it, &r))
            for (size_t i = 0; i < r.len; i++)
                if (x[r.off + i] / s > hi) acc += dy[r.off + i];
        part[t] = acc;
    }
    double acc = 0;
    for (size_t t = 0; t < p.tasks; t++) acc += part[t];
    return acc;
}

void lb_quant_pact_backward_ref(lb_quant *q, size_t outer, const float *x, const float *dy,
                                float *dx, int dx_acc) {
    float s = pact_step(q, 0);
    q->dparam[0] = (float)above_sum(q, outer, s, x, dy);
    lb_quant_uniform_backward(q, outer, &s, x, dy, dx, dx_acc, NULL, 0.0f);
}

/* The reference's two passes in one (quant_seg_impl.h's backward_above): the same quotient x/s
 * decides the mask and the alpha sum. */
static void pact_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                          int dx_acc) {
    const lb_qseg_kernels *K = lb_qseg_get();
    float s = pact_step(q, 0), hi = (float)q->qp;
    q_plan p = plan_of(q, outer);
    double part[LB_Q_MAXPART];
#pragma omp parallel for schedule(static) if (p.par)
    for (long t = 0; t < (long)p.tasks; t++) {
        q_iter it = iter_of(q, &p, (size_t)t);
        double acc = 0;
        q_run r;
        while (iter_next(&it, &r))
            acc += K->backward_above(x + r.off, dy + r.off, dx + r.off, r.len, s, 0.0f, hi, dx_acc);
        part[t] = acc;
    }
    double acc = 0;
    for (size_t t = 0; t < p.tasks; t++) acc += part[t];
    q->dparam[0] = (float)acc;
}

/* alpha >= LB_LSQ_FLOOR * alpha0 after every update (a NaN alpha goes to the floor too): a clip
 * at or below zero would send every activation to code 0 with no gradient to bring it back, as
 * LSQ's step (lsq.c). Before the init nothing is moved. */
static int pact_project(lb_quant *q) {
    if (q->state[0] == 0.0f) return 0;
    float lo = LB_LSQ_FLOOR * q->state[1];
    if (!(q->param[0] > lo)) {
        q->param[0] = lo;
        return 1;
    }
    return 0;
}

const lb_quant_vt lb_quant_vt_pact = {
    .name = "pact",
    .nparam = pact_nparam,
    .nstate = pact_nstate,
    .forward = pact_forward,
    .backward = pact_backward,
    .reg = NULL,
    .step = pact_step,
    .reset = pact_reset,
    .project = pact_project,
};
