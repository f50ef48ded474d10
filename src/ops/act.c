/* Pointwise ReLU and ReLU6, forward and backward. Backward masks by the OUTPUT, so the forward may
 * run in place; there is no separate reference, the loops are the reference. */
#include "lb_ops.h"

/* Below this many elements a parallel region costs more than it saves. Loops carry no restrict
 * (x may be y): the compiler checks the overlap at run time and still vectorizes. Loads are
 * hoisted out of the conditionals so the selects vectorize. The forward selects are written so
 * that a NaN passes through (as in PyTorch) and the NaN trap downstream still sees it. */
#define LB_ACT_PAR_MIN 65536

void lb_relu_forward(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void lb_relu_backward(size_t n, const float *y, const float *dy, float *dx, int dx_acc) {
    if (dx_acc) {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = dy[i];
            dx[i] += y[i] > 0.0f ? g : 0.0f;
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
    }
}

void lb_relu6_forward(size_t n, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = v > 6.0f ? 6.0f : v;
    }
}

/* Gradient passes where 0 < y < 6, i.e. 0 < x < 6: zero at both clip points, as PyTorch. */
void lb_relu6_backward(size_t n, const float *y, const float *dy, float *dx, int dx_acc) {
    if (dx_acc) {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = dy[i], v = y[i];
            dx[i] += ((v > 0.0f) & (v < 6.0f)) ? g : 0.0f;
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= LB_ACT_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = dy[i], v = y[i];
            dx[i] = ((v > 0.0f) & (v < 6.0f)) ? g : 0.0f;
        }
    }
}
