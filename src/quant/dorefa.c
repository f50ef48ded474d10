/* DoReFa weight quantizer (Zhou et al. 2016; methods.md sec. 1; docs/quantizers.md): w' =
 * tanh(w)/(2 max|tanh w|) + 1/2 rounded to 2^b-1 steps on [0,1] and mapped to 2w''-1, with the
 * max per tensor or per output channel. Weights only (the plan refuses it on activations); no
 * learned parameters. Not DoReFa's activation or gradient quantizers.
 *
 * Gradient: straight-through for the round, exact through tanh AND through the max, as the
 * authors' reference (tensorpack examples/DoReFa-Net/dorefa.py, fw: `x / tf.reduce_max(tf.abs(x))`
 * with no stop_gradient; only the 1-bit branch stops the gradient of its mean). With t = tanh w,
 * M = max|t|, g = dL/dy: dL/dt_i = g_i/M, plus at the maximum -sign(t_m) (sum_j g_j t_j)/M^2
 * (shared evenly by tied maxima, as PyTorch's amax), then dL/dw = dL/dt (1 - t^2).
 *
 * Scalar loops: weight tensors are small next to activations, and the per-channel sums run in
 * index order in double, so results do not depend on the thread count. */
#include "lb_quant.h"

#include <math.h>

static int dorefa_count(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 0;
}

/* Element (o, c, i) of the [outer][ch][inner] layout. */
static size_t at(const lb_quant *q, size_t o, int c, size_t i) {
    return (o * (size_t)q->ch + (size_t)c) * q->inner + i;
}

/* max |tanh x| over channel c and how many elements reach it. An all-zero channel has max 0; it
 * is replaced by 1 (a constant: w' = 1/2 for every element, no gradient through the max), where
 * the formula would divide 0 by 0. */
static float chan_max(const lb_quant *q, size_t outer, const float *x, int c, int *ties) {
    float m = 0.0f;
    int n = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < q->inner; i++) {
            float a = fabsf(tanhf(x[at(q, o, c, i)]));
            if (a > m) {
                m = a;
                n = 1;
            } else if (a == m) {
                n++;
            }
        }
    *ties = m > 0.0f ? n : 0;
    return m > 0.0f ? m : 1.0f;
}

/* The rounded index j = round(k w') in [0, k], exactly as the forward computes it (the order of
 * tensorpack's `x / max * 0.5 + 0.5`, then `round(x * n)`). */
static float dorefa_j(float x, float m, float k) {
    float wp = tanhf(x) / m * 0.5f + 0.5f;
    return rintf(wp * k);
}

static void dorefa_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    (void)training; /* the same in training and eval: nothing is learned or kept */
    float k = (float)q->qp;
    for (int c = 0; c < q->ch; c++) {
        int ties;
        float m = chan_max(q, outer, x, c, &ties);
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                y[e] = 2.0f * (dorefa_j(x[e], m, k) / k) - 1.0f;
            }
    }
}

static void dorefa_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                            int dx_acc) {
    for (int c = 0; c < q->ch; c++) {
        int ties;
        float m = chan_max(q, outer, x, c, &ties);
        double gt = 0; /* sum g t over the channel */
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                gt += (double)dy[e] * (double)tanhf(x[e]);
            }
        /* the max's share: -(sum g t)/M^2 per unit of M, split among the tied maxima */
        double dm = ties ? -gt / ((double)m * m) / ties : 0.0;
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                float t = tanhf(x[e]);
                double dt = (double)dy[e] / m;
                if (ties && fabsf(t) == m) dt += t > 0 ? dm : -dm;
                float d = (float)(dt * (1.0 - (double)t * t));
                dx[e] = dx_acc ? dx[e] + d : d;
            }
    }
}

static float dorefa_step(const lb_quant *q, int c) {
    (void)c;
    return 1.0f / (float)q->qp;
}

lb_status lb_quant_dorefa_codes(const lb_quant *q, size_t outer, const float *x,
                                signed char *codes) {
    if (q->cfg.kind != LB_Q_DOREFA)
        return lb_error_set(LB_EINVAL, "dorefa codes of a '%s' quantizer", q->vt->name);
    if (q->cfg.bits > 7)
        return lb_error_set(LB_EINVAL,
                            "%d-bit DoReFa weights: codes 2j-%d need %d bits, more than int8",
                            q->cfg.bits, q->qp, q->cfg.bits + 1);
    float k = (float)q->qp;
    for (int c = 0; c < q->ch; c++) {
        int ties;
        float m = chan_max(q, outer, x, c, &ties);
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                codes[e] = (signed char)(2 * (int)dorefa_j(x[e], m, k) - q->qp);
            }
    }
    return LB_OK;
}

const lb_quant_vt lb_quant_vt_dorefa = {
    .name = "dorefa",
    .nparam = dorefa_count,
    .nstate = dorefa_count,
    .forward = dorefa_forward,
    .backward = dorefa_backward,
    .reg = NULL,
    .step = dorefa_step,
    .reset = NULL,
};
