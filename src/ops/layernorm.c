/* Per-sample layer norm over (c,h,w) without affine parameters, as seed 000's spiking VGG puts
 * after each conv. Not batch norm (bn.c): statistics never cross samples, so the T*n frames of a
 * spiking network normalize independently. */
#include "lb_ops.h"

#include <math.h>

/* Moments in double: a plane of 25k floats summed in float loses the low bits PyTorch keeps. */
void lb_ln_forward(int n, size_t d, const float *x, float *y, float *mean, float *invstd) {
#pragma omp parallel for schedule(static) if ((size_t)n * d >= 65536)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        float *yi = y + (size_t)i * d;
        double s = 0, ss = 0;
        for (size_t j = 0; j < d; j++) s += xi[j];
        double mu = s / (double)d;
        for (size_t j = 0; j < d; j++) {
            double v = xi[j] - mu;
            ss += v * v;
        }
        float m = (float)mu, is = (float)(1.0 / sqrt(ss / (double)d + LB_LN_EPS));
        for (size_t j = 0; j < d; j++) yi[j] = (xi[j] - m) * is;
        mean[i] = m;
        invstd[i] = is;
    }
}

/* dx = invstd * (dy - mean(dy) - y * mean(dy * y)), from the normalized output y. */
void lb_ln_backward(int n, size_t d, const float *y, const float *invstd, const float *dy,
                    float *dx, int dx_acc) {
#pragma omp parallel for schedule(static) if ((size_t)n * d >= 65536)
    for (int i = 0; i < n; i++) {
        const float *yi = y + (size_t)i * d, *gi = dy + (size_t)i * d;
        float *xi = dx + (size_t)i * d;
        double s = 0, sy = 0;
        for (size_t j = 0; j < d; j++) {
            s += gi[j];
            sy += (double)gi[j] * yi[j];
        }
        float mg = (float)(s / (double)d), mgy = (float)(sy / (double)d), is = invstd[i];
        for (size_t j = 0; j < d; j++) {
            float g = is * (gi[j] - mg - yi[j] * mgy);
            xi[j] = dx_acc ? xi[j] + g : g;
        }
    }
}
