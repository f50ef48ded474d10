/* Max, average (count_include_pad) and global average pooling over NCHW planes, forward and
 * backward. One plane per OpenMP iteration; there is no separate reference, these loops are it. */
#include "lb_ops.h"

#include <math.h>
#include <string.h>

/* Below this many input elements a parallel region costs more than it saves. */
#define LB_POOL_PAR_MIN 32768

typedef float v4f __attribute__((vector_size(16)));

lb_status lb_pool_desc_init(lb_pool_desc *d, int n, int c, int h, int w, int k, int stride,
                            int pad) {
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return lb_error_set(LB_EINVAL, "pool: bad input shape %dx%dx%dx%d", n, c, h, w);
    if (k <= 0 || stride <= 0 || pad < 0)
        return lb_error_set(LB_EINVAL, "pool: bad window k=%d stride=%d pad=%d", k, stride, pad);
    /* PyTorch's limit; it also guarantees every window holds at least one real element. */
    if (2 * pad > k)
        return lb_error_set(LB_EINVAL, "pool: pad %d exceeds half the window %d", pad, k);
    if (h + 2 * pad < k || w + 2 * pad < k)
        return lb_error_set(LB_EINVAL, "pool: window %d larger than padded input %dx%d", k, h, w);
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->k = k;
    d->stride = stride;
    d->pad = pad;
    d->oh = (h + 2 * pad - k) / stride + 1;
    d->ow = (w + 2 * pad - k) / stride + 1;
    return LB_OK;
}

static inline int imax(int a, int b) {
    return a > b ? a : b;
}
static inline int imin(int a, int b) {
    return a < b ? a : b;
}

/* Window bounds clipped to the image: [*s, *e). */
static inline void window(int o, int stride, int pad, int k, int size, int *s, int *e) {
    int a = o * stride - pad;
    *s = imax(a, 0);
    *e = imin(a + k, size);
}

/* ---- max ------------------------------------------------------------------------------------- */

/* The common 2x2 stride-2 unpadded case, branch-free so the output row vectorizes. The select
 * order keeps the first maximum on ties; a NaN wins (and propagates) as in PyTorch. */
static void maxpool2_plane(const float *x, int h, int w, int oh, int ow, float *y, int32_t *am) {
    (void)h;
    for (int oy = 0; oy < oh; oy++) {
        const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
        float *yr = y + (size_t)oy * ow;
        int32_t *ar = am + (size_t)oy * ow;
        const int32_t base = 2 * oy * w;
        for (int ox = 0; ox < ow; ox++) {
            float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], e = r1[2 * ox + 1];
            float m = a;
            int32_t i = base + 2 * ox;
            int t = (b > m) | (b != b);
            m = t ? b : m;
            i = t ? base + 2 * ox + 1 : i;
            t = (c > m) | (c != c);
            m = t ? c : m;
            i = t ? base + w + 2 * ox : i;
            t = (e > m) | (e != e);
            m = t ? e : m;
            i = t ? base + w + 2 * ox + 1 : i;
            yr[ox] = m;
            ar[ox] = i;
        }
    }
}

/* Output columns [*lo, *hi) whose window column kx lies in the image: 0 <= ox*s + kx - pad < w. */
static inline void col_range(int kx, int w, int stride, int pad, int ow, int *lo, int *hi) {
    *lo = kx >= pad ? 0 : (pad - kx + stride - 1) / stride;
    *hi = w - 1 + pad - kx < 0 ? 0 : imin((w - 1 + pad - kx) / stride + 1, ow);
}

/* One window column of one input row against a row of running maxima. Inlined with a literal
 * stride where it is 1 or 2, so the strided loads vectorize. */
static inline __attribute__((always_inline)) void max_cols(const float *restrict row, int stride,
                                                           int off, int lo, int hi, int32_t base,
                                                           float *restrict m,
                                                           int32_t *restrict mi) {
    for (int ox = lo; ox < hi; ox++) {
        const int ix = ox * stride + off;
        const float v = row[ix];
        const int t = (v > m[ox]) | (v != v);
        m[ox] = t ? v : m[ox];
        mi[ox] = t ? base + ix : mi[ox];
    }
}

/* Any window: a whole output row is updated per (input row, window column), which visits each
 * window in PyTorch's row-major order (so ties keep the first maximum) without a data-dependent
 * branch. Padding is never read: it counts as -inf, the initial value. */
static void maxpool_plane(const lb_pool_desc *d, const float *restrict x, float *restrict y,
                          int32_t *restrict am) {
    const int w = d->w, s = d->stride, pad = d->pad, ow = d->ow;
    for (int oy = 0; oy < d->oh; oy++) {
        int hs, he;
        window(oy, s, pad, d->k, d->h, &hs, &he);
        float *m = y + (size_t)oy * ow;
        int32_t *mi = am + (size_t)oy * ow;
        for (int ox = 0; ox < ow; ox++) {
            m[ox] = -INFINITY;
            mi[ox] = hs * w + imax(ox * s - pad, 0);
        }
        for (int iy = hs; iy < he; iy++) {
            const float *row = x + (size_t)iy * w;
            for (int kx = 0; kx < d->k; kx++) {
                int lo, hi;
                col_range(kx, w, s, pad, ow, &lo, &hi);
                if (s == 2)
                    max_cols(row, 2, kx - pad, lo, hi, iy * w, m, mi);
                else if (s == 1)
                    max_cols(row, 1, kx - pad, lo, hi, iy * w, m, mi);
                else
                    max_cols(row, s, kx - pad, lo, hi, iy * w, m, mi);
            }
        }
    }
}

void lb_maxpool_forward(const lb_pool_desc *d, const float *x, float *y, int32_t *argmax) {
    const int planes = d->n * d->c;
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
    const int fast2 = d->k == 2 && d->stride == 2 && d->pad == 0;
#pragma omp parallel for schedule(static) if ((size_t)planes * in >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        if (fast2)
            maxpool2_plane(x + p * in, d->h, d->w, d->oh, d->ow, y + p * out, argmax + p * out);
        else
            maxpool_plane(d, x + p * in, y + p * out, argmax + p * out);
    }
}

void lb_maxpool_backward(const lb_pool_desc *d, const int32_t *argmax, const float *dy, float *dx,
                         int dx_acc) {
    const int planes = d->n * d->c;
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if ((size_t)planes * in >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + p * in;
        const float *dyp = dy + p * out;
        const int32_t *ap = argmax + p * out;
        if (!dx_acc)
            for (size_t j = 0; j < in; j++) dxp[j] = 0.0f;
        for (size_t j = 0; j < out; j++) dxp[ap[j]] += dyp[j];
    }
}

/* ---- average --------------------------------------------------------------------------------- */

/* In floor mode every window lies inside the padded input, so the count_include_pad divisor is
 * always k*k. */
static void avgpool_plane(const lb_pool_desc *d, const float *x, float *y) {
    const int w = d->w, s = d->stride, pad = d->pad, ow = d->ow;
    const float inv = 1.0f / (float)(d->k * d->k);
    if (d->k == 2 && s == 2 && pad == 0) {
        for (int oy = 0; oy < d->oh; oy++) {
            const float *r0 = x + (size_t)(2 * oy) * w, *r1 = r0 + w;
            float *yr = y + (size_t)oy * ow;
            for (int ox = 0; ox < ow; ox++)
                yr[ox] = (r0[2 * ox] + r0[2 * ox + 1] + r1[2 * ox] + r1[2 * ox + 1]) * inv;
        }
        return;
    }
    /* Row-wise as maxpool_plane: each sum is still taken in the window's row-major order. */
    for (int oy = 0; oy < d->oh; oy++) {
        int hs, he;
        window(oy, s, pad, d->k, d->h, &hs, &he);
        float *yr = y + (size_t)oy * ow;
        for (int ox = 0; ox < ow; ox++) yr[ox] = 0.0f;
        for (int iy = hs; iy < he; iy++) {
            const float *row = x + (size_t)iy * w;
            for (int kx = 0; kx < d->k; kx++) {
                int lo, hi;
                col_range(kx, w, s, pad, ow, &lo, &hi);
                for (int ox = lo; ox < hi; ox++) yr[ox] += row[ox * s + kx - pad];
            }
        }
        for (int ox = 0; ox < ow; ox++) yr[ox] *= inv;
    }
}

static void avgpool_plane_backward(const lb_pool_desc *d, const float *dy, float *dx, int dx_acc) {
    const int w = d->w, s = d->stride, pad = d->pad, ow = d->ow;
    const size_t in = (size_t)d->h * w;
    const float inv = 1.0f / (float)(d->k * d->k);
    const int fast2 = d->k == 2 && s == 2 && pad == 0;
    if (!dx_acc) { /* the 2x2 path writes its windows itself: only rows below them need zeros */
        for (size_t j = fast2 ? (size_t)(2 * d->oh) * w : 0; j < in; j++) dx[j] = 0.0f;
    }
    if (fast2) {
        for (int oy = 0; oy < d->oh; oy++) {
            float *r0 = dx + (size_t)(2 * oy) * w, *r1 = r0 + w;
            const float *g = dy + (size_t)oy * ow;
            if (!dx_acc) { /* disjoint windows: write, do not read */
                for (int ox = 0; ox < ow; ox++) {
                    float v = g[ox] * inv;
                    r0[2 * ox] = r0[2 * ox + 1] = r1[2 * ox] = r1[2 * ox + 1] = v;
                }
                if (w & 1) r0[w - 1] = r1[w - 1] = 0.0f;
            } else {
                for (int ox = 0; ox < ow; ox++) {
                    float v = g[ox] * inv;
                    r0[2 * ox] += v;
                    r0[2 * ox + 1] += v;
                    r1[2 * ox] += v;
                    r1[2 * ox + 1] += v;
                }
            }
        }
        return;
    }
    for (int oy = 0; oy < d->oh; oy++) {
        int hs, he;
        window(oy, s, pad, d->k, d->h, &hs, &he);
        const float *g = dy + (size_t)oy * ow;
        for (int iy = hs; iy < he; iy++) {
            float *row = dx + (size_t)iy * w;
            for (int kx = 0; kx < d->k; kx++) {
                int lo, hi;
                col_range(kx, w, s, pad, ow, &lo, &hi);
                for (int ox = lo; ox < hi; ox++) row[ox * s + kx - pad] += g[ox] * inv;
            }
        }
    }
}

void lb_avgpool_forward(const lb_pool_desc *d, const float *x, float *y) {
    const int planes = d->n * d->c;
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if ((size_t)planes * in >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) avgpool_plane(d, x + p * in, y + p * out);
}

void lb_avgpool_backward(const lb_pool_desc *d, const float *dy, float *dx, int dx_acc) {
    const int planes = d->n * d->c;
    const size_t in = (size_t)d->h * d->w, out = (size_t)d->oh * d->ow;
#pragma omp parallel for schedule(static) if ((size_t)planes * in >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) avgpool_plane_backward(d, dy + p * out, dx + p * in, dx_acc);
}

/* ---- global average -------------------------------------------------------------------------- */

void lb_gap_forward(int n, int c, int hw, const float *x, float *y) {
    const int planes = n * c;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * hw;
        /* Four 4-float vector chains (vector extensions, plain SSE2) hide the add latency; the
         * summation order is fixed by the source, not by the compiler. */
        v4f a[4] = {{0}};
        int j = 0;
        for (; j + 16 <= hw; j += 16)
            for (int l = 0; l < 4; l++) {
                v4f v;
                memcpy(&v, xp + j + 4 * l, sizeof v);
                a[l] += v;
            }
        v4f t = (a[0] + a[1]) + (a[2] + a[3]);
        float s = (t[0] + t[1]) + (t[2] + t[3]);
        for (; j < hw; j++) s += xp[j];
        y[p] = s / (float)hw;
    }
}

void lb_gap_backward(int n, int c, int hw, const float *dy, float *dx, int dx_acc) {
    const int planes = n * c;
    const float inv = 1.0f / (float)hw;
#pragma omp parallel for schedule(static) if ((size_t)planes * hw >= LB_POOL_PAR_MIN)
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * hw;
        const float g = dy[p] * inv;
        if (dx_acc)
            for (int j = 0; j < hw; j++) dxp[j] += g;
        else
            for (int j = 0; j < hw; j++) dxp[j] = g;
    }
}
