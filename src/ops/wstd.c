/* Weight standardization (MaQD, methods.md sec. 5, our design): per output channel (w - mean) /
 * std over the fan-in, and its exact backward. A training-time reparametrization of conv weights,
 * not a quantizer and not a layer: the graph runs it before the weight quantizer. */
#include "lb_ops.h"

#include <math.h>

void lb_wstd_forward(int cout, size_t k, const float *w, float *ws, float *mean, float *invstd) {
    for (int c = 0; c < cout; c++) {
        const float *p = w + (size_t)c * k;
        double s = 0, v = 0;
        for (size_t j = 0; j < k; j++) s += p[j];
        double mu = s / (double)k;
        for (size_t j = 0; j < k; j++) v += (p[j] - mu) * (p[j] - mu);
        double is = 1.0 / sqrt(v / (double)k + LB_WSTD_EPS);
        for (size_t j = 0; j < k; j++) ws[(size_t)c * k + j] = (float)((p[j] - mu) * is);
        if (mean) mean[c] = (float)mu;
        if (invstd) invstd[c] = (float)is;
    }
}

/* ws is the forward's float output: using it as x-hat costs its rounding (1 ulp relative), far
 * below what a float gradient resolves, and needs no second copy of w. */
void lb_wstd_backward(int cout, size_t k, const float *ws, const float *invstd, const float *dws,
                      float *dw) {
    for (int c = 0; c < cout; c++) {
        const float *x = ws + (size_t)c * k, *g = dws + (size_t)c * k;
        double sg = 0, sgx = 0;
        for (size_t j = 0; j < k; j++) {
            sg += g[j];
            sgx += (double)g[j] * x[j];
        }
        double mg = sg / (double)k, mgx = sgx / (double)k, is = invstd[c];
        for (size_t j = 0; j < k; j++)
            dw[(size_t)c * k + j] = (float)(is * (g[j] - mg - (double)x[j] * mgx));
    }
}
