/* The identity quantizer (float layers): copies forward, passes the gradient; no parameters. */
#include "lb_quant.h"

#include <string.h>

static int none_count(const lb_qcfg *cfg, int ch) {
    (void)cfg;
    (void)ch;
    return 0;
}

static void none_forward(lb_quant *q, size_t outer, const float *x, float *y, int training) {
    (void)training;
    size_t n = outer * (size_t)q->ch * q->inner;
    if (y != x) memcpy(y, x, n * sizeof *y);
}

static void none_backward(lb_quant *q, size_t outer, const float *x, const float *dy, float *dx,
                          int dx_acc) {
    (void)x;
    size_t n = outer * (size_t)q->ch * q->inner;
    if (dx_acc) {
        for (size_t i = 0; i < n; i++) dx[i] += dy[i];
    } else if (dx != dy) {
        memcpy(dx, dy, n * sizeof *dx);
    }
}

static float none_step(const lb_quant *q, int c) {
    (void)q;
    (void)c;
    return 0.0f;
}

const lb_quant_vt lb_quant_vt_none = {
    .name = "none",
    .nparam = none_count,
    .nstate = none_count,
    .forward = none_forward,
    .backward = none_backward,
    .reg = NULL,
    .step = none_step,
    .reset = NULL,
};
