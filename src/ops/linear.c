/* Fully connected layer y = x w^T + b: the fast path (CBLAS sgemm) and the scalar reference. The
 * layers in lowbit's models are small (3136x10, 64x10), so BLAS stays single-threaded here as
 * everywhere (lb_threads_set pins it); no scratch is needed. */
#include "lb_ops.h"

#include <cblas.h>
#include <string.h>

void lb_linear_forward(int n, int in, int out, const float *x, const float *w, const float *b,
                       float *y) {
    if (b)
        for (int i = 0; i < n; i++) memcpy(y + (size_t)i * out, b, (size_t)out * sizeof *y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in,
                b ? 1.0f : 0.0f, y, out);
}

void lb_linear_backward(int n, int in, int out, const float *x, const float *w, const float *dy,
                        float *dx, int dx_acc, float *dw, float *db) {
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in,
                    dx_acc ? 1.0f : 0.0f, dx, in);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 0.0f,
                    dw, in);
    if (db) {
        for (int o = 0; o < out; o++) db[o] = 0;
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    }
}

void lb_linear_forward_ref(int n, int in, int out, const float *x, const float *w, const float *b,
                           float *y) {
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int k = 0; k < in; k++) s += (double)x[(size_t)i * in + k] * w[(size_t)o * in + k];
            y[(size_t)i * out + o] = (float)s;
        }
}

void lb_linear_backward_ref(int n, int in, int out, const float *x, const float *w, const float *dy,
                            float *dx, int dx_acc, float *dw, float *db) {
    if (dx)
        for (int i = 0; i < n; i++)
            for (int k = 0; k < in; k++) {
                double s = 0;
                for (int o = 0; o < out; o++)
                    s += (double)dy[(size_t)i * out + o] * w[(size_t)o * in + k];
                float *p = dx + (size_t)i * in + k;
                *p = dx_acc ? *p + (float)s : (float)s;
            }
    if (dw)
        for (int o = 0; o < out; o++)
            for (int k = 0; k < in; k++) {
                double s = 0;
                for (int i = 0; i < n; i++)
                    s += (double)dy[(size_t)i * out + o] * x[(size_t)i * in + k];
                dw[(size_t)o * in + k] = (float)s;
            }
    if (db)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += dy[(size_t)i * out + o];
            db[o] = (float)s;
        }
}
