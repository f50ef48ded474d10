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
 * tanhf is most of the cost and no vectorized tanhf gives libm's bits, so the kind computes it
 * once per element (three times in the backward before: the max, the sum, the gradient), in
 * threads over the elements, keeping t in the output (y, or dx when it is a separate buffer); the
 * per-channel max and the double sum of g t still run in index order, so results are the same
 * bits as the reference loops (lb_quant_dorefa_forward_ref / _backward_ref) for any thread count
 * (tests/test_quant_fast.c). */
#include "lb_quant.h"

#include <math.h>

#define DOREFA_PAR_MIN 4096 /* fewer elements: no threads */

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
 * the formula would divide 0 by 0. is_t: x already holds tanh x (the threaded paths compute it once
 * an element). */
static float chan_max(const lb_quant *q, size_t outer, const float *x, int c, int is_t, int *ties) {
    float m = 0.0f;
    int n = 0;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < q->inner; i++) {
            float v = x[at(q, o, c, i)];
            float a = fabsf(is_t ? v : tanhf(v));
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

void lb_quant_dorefa_forward_ref(const lb_quant *q, size_t outer, const float *x, float *y) {
    float k = (float)q->qp;
    for (int c = 0; c < q->ch; c++) {
        int ties;
        float m = chan_max(q, outer, x, c, 0, &ties);
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                y[e] = 2.0f * (dorefa_j(x[e], m, k) / k) - 1.0f;
            }
    }
}

void lb_quant_dorefa_backward_ref(const lb_quant *q, size_t outer, const float *x, const float *dy,
                                  float *dx, int dx_acc) {
    for (int c = 0; c < q->ch; c++) {
        int ties;
        float m = chan_max(q, outer, x, c, 0, &ties);
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

/* t = tanh x per element, in threads: the only libm call of the kind */
static void tanh_all(const float *x, float *t, size_t n) {
#pragma omp parallel for schedule(static) if (n >= DOREFA_PAR_MIN)
    for (long e = 0; e < (long)n; e++) t[e] = tanhf(x[e]);
}

static void dorefa_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    (void)training; /* the same in training and eval: nothing is learned or kept */
    size_t n = outer * (size_t)q->ch * q->inner;
    float k = (float)q->qp, m[LB_PO2_MAX_CH];
    if (q->ch > LB_PO2_MAX_CH || x == y) {
        lb_quant_dorefa_forward_ref(q, outer, x, y);
        return;
    }
    tanh_all(x, y, n);
    for (int c = 0; c < q->ch; c++) {
        int ties;
        m[c] = chan_max(q, outer, y, c, 1, &ties);
    }
    /* dorefa_j on t: tanhf(x) / m * 0.5f + 0.5f, rounded at k steps */
#pragma omp parallel for schedule(static) if (n >= DOREFA_PAR_MIN)
    for (long e = 0; e < (long)n; e++) {
        float mc = m[((size_t)e / q->inner) % (size_t)q->ch];
        float j = rintf((y[e] / mc * 0.5f + 0.5f) * k);
        y[e] = 2.0f * (j / k) - 1.0f;
    }
}

static void dorefa_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                            int dx_acc) {
    size_t n = outer * (size_t)q->ch * q->inner;
    /* t is kept in dx: only when dx is a buffer of its own that is overwritten */
    if (dx_acc || dx == dy || dx == x || q->ch > LB_PO2_MAX_CH) {
        lb_quant_dorefa_backward_ref(q, outer, x, dy, dx, dx_acc);
        return;
    }
    float m[LB_PO2_MAX_CH];
    double dm[LB_PO2_MAX_CH];
    int ties[LB_PO2_MAX_CH];
    tanh_all(x, dx, n);
#pragma omp parallel for schedule(static) if (n >= DOREFA_PAR_MIN && q->ch > 1)
    for (int c = 0; c < q->ch; c++) {
        m[c] = chan_max(q, outer, dx, c, 1, &ties[c]);
        double gt = 0; /* sum g t over the channel, in index order as the reference */
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < q->inner; i++) {
                size_t e = at(q, o, c, i);
                gt += (double)dy[e] * (double)dx[e];
            }
        dm[c] = ties[c] ? -gt / ((double)m[c] * m[c]) / ties[c] : 0.0;
    }
#pragma omp parallel for schedule(static) if (n >= DOREFA_PAR_MIN)
    for (long e = 0; e < (long)n; e++) {
        size_t c = ((size_t)e / q->inner) % (size_t)q->ch;
        float t = dx[e];
        double dt = (double)dy[e] / m[c];
        if (ties[c] && fabsf(t) == m[c]) dt += t > 0 ? dm[c] : -dm[c];
        dx[e] = (float)(dt * (1.0 - (double)t * t));
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
        float m = chan_max(q, outer, x, c, 0, &ties);
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
